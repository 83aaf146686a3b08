package handlersfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
	"time"
)

// Bounds on reading a handlers file (see docs/reliability.md, "inputs and
// resource bounds").
const (
	// MaxSize is the largest handlers file accepted, in bytes. Real files
	// are a few KB (the full example is 2 KB); 1 MiB leaves room for
	// hundreds of methods while keeping the YAML parse and its node tree
	// to a few tens of milliseconds and MB.
	MaxSize = 1 << 20
	// ReadTimeout bounds opening and reading the file. A local file of
	// MaxSize reads in milliseconds; a file on a hung network mount would
	// otherwise stall a load, and a reload, for ever.
	ReadTimeout = 5 * time.Second
)

// Errors of ReadFile, for errors.Is.
var (
	// ErrNotRegular: the path (symlinks followed) is not a regular file:
	// a FIFO, a device, a directory or a socket. It is refused before any
	// read.
	ErrNotRegular = errors.New("not a regular file")
	// ErrTooLarge: the file is over MaxSize bytes.
	ErrTooLarge = errors.New("file too large")
	// ErrReadTimeout: opening or reading the file took over ReadTimeout.
	ErrReadTimeout = errors.New("read timed out")
)

// ReadFile reads the handlers file at path, symlinks followed, within the
// bounds above. What it checks is the opened file (no window between a
// check and the read): it opens without blocking (O_NONBLOCK, so a FIFO
// nobody writes to does not hang the open), refuses anything but a regular
// file (ErrNotRegular, naming what it is) and a file over MaxSize
// (ErrTooLarge, from its size and again while reading, in case it grows).
// When the open or the read takes over ReadTimeout it returns
// ErrReadTimeout; the goroutine blocked in the system call is then left
// behind until the kernel returns (nothing can interrupt a read of a
// regular file), holding at most MaxSize bytes.
func ReadFile(path string) ([]byte, error) {
	return readFile(path, ReadTimeout, readBounded)
}

type readResult struct {
	data []byte
	err  error
}

// readFile runs read(path) and gives up waiting after timeout.
func readFile(path string, timeout time.Duration, read func(string) ([]byte, error)) ([]byte, error) {
	done := make(chan readResult, 1) // buffered: a late read never blocks
	go func() {
		data, err := read(path)
		done <- readResult{data, err}
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case r := <-done:
		return r.data, r.err
	case <-t.C:
		return nil, fmt.Errorf("%w after %v", ErrReadTimeout, timeout)
	}
}

// readBounded opens path without blocking, checks what it opened and reads
// at most MaxSize+1 bytes of it.
func readBounded(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: it is %s", ErrNotRegular, fileKind(fi.Mode()))
	}
	if fi.Size() > MaxSize {
		return nil, tooLarge(fi.Size())
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxSize {
		return nil, tooLarge(-1)
	}
	return data, nil
}

// tooLarge is ErrTooLarge with the size when known (-1: it grew while read).
func tooLarge(size int64) error {
	if size < 0 {
		return fmt.Errorf("%w: it grew past the limit of %d bytes (1 MiB) while being read", ErrTooLarge, MaxSize)
	}
	return fmt.Errorf("%w: %d bytes, over the limit of %d bytes (1 MiB)", ErrTooLarge, size, MaxSize)
}

// fileKind names what a non-regular file is.
func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO (named pipe)"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m&fs.ModeSocket != 0:
		return "a socket"
	}
	return "not a regular file (mode " + m.String() + ")"
}
