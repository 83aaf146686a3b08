//go:build unix

package localhub

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// checkPrivate refuses path unless it is owned by the effective user and
// not writable by group or others. Symbolic links are refused too.
func checkPrivate(dir, path string, fi fs.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil // not a Unix file system: nothing to check
	}
	euid := os.Geteuid()
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("localhub: %w: %s is a symbolic link; remove it", ErrDirUnsafe, path)
	case int(st.Uid) != euid:
		return fmt.Errorf("localhub: %w: %s is owned by uid %d, not the running user (uid %d); fix with `chown -R %d %s`", ErrDirUnsafe, path, st.Uid, euid, euid, dir)
	case fi.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("localhub: %w: %s is writable by group or others (mode %04o); fix with `chmod -R go-w %s` (the hub creates it 0700)", ErrDirUnsafe, path, fi.Mode().Perm(), dir)
	}
	return nil
}

// tryLock takes an exclusive (else shared) flock(2) on f without waiting;
// lockHeld(err) when another open file holds a conflicting one.
func tryLock(f *os.File, exclusive bool) error {
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	return unix.Flock(int(f.Fd()), how|unix.LOCK_NB)
}

// unlock drops f's lock.
func unlock(f *os.File) error { return unix.Flock(int(f.Fd()), unix.LOCK_UN) }

// lockHeld reports whether err is tryLock's "held by another".
func lockHeld(err error) bool { return errors.Is(err, unix.EWOULDBLOCK) }
