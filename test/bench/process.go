package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"sync"
	"syscall"
	"time"
)

// procSpec describes a device process to start. It says it is ready
// (connected and subscribed) in one of two ways: with READY=1 on the
// notification socket it gets in $NOTIFY_SOCKET (notify: methodd, as
// under systemd), or with a line of output that isReady matches (the
// devices whose ready line is their documented protocol).
type procSpec struct {
	name string
	path string
	args []string
	env  []string
	dir  string
	// notify gives the process a notification socket (see notifySocket)
	// and takes its first READY=1 as ready.
	notify bool
	// isReady reports whether a line of output (stream "stdout" or "stderr")
	// says the device is connected and subscribed.
	isReady func(stream string, line []byte) bool
}

// proc is a running device process. Its output is read to the end by two
// goroutines that proc owns; the last few KB are kept for error messages.
type proc struct {
	name    string
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	started time.Time

	ready     chan struct{} // closed when the process first said it is ready
	readyOnce sync.Once
	readyAt   time.Time // set before ready is closed
	notify    *notifySocket

	exited  chan struct{} // closed after Wait returned
	waitErr error         // set before exited is closed

	tail tailBuffer
}

// tailKeep is how much output a proc keeps for diagnostics.
const tailKeep = 8 << 10

// startProc starts spec; the clock for start-up time starts just before
// the exec.
func startProc(spec procSpec) (*proc, error) {
	cmd := exec.Command(spec.path, spec.args...)
	cmd.Env, cmd.Dir = spec.env, spec.dir
	cmd.SysProcAttr = ownGroup() // a ^C to the harness is not the device's
	p := &proc{name: spec.name, cmd: cmd, ready: make(chan struct{}), exited: make(chan struct{})}
	p.tail.keep = tailKeep
	var err error
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if spec.notify {
		if p.notify, err = listenNotify(); err != nil {
			return nil, err
		}
		cmd.Env = append(slices.Clip(spec.env), p.notify.env()) // spec.env is the whole environment
	}
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		if p.notify != nil {
			p.notify.Close()
		}
		return nil, fmt.Errorf("start %s: %w", spec.name, err)
	}
	var readers, watcher sync.WaitGroup
	readers.Go(func() { p.scan("stdout", stdout, spec.isReady) })
	readers.Go(func() { p.scan("stderr", stderr, spec.isReady) })
	if p.notify != nil {
		watcher.Go(func() {
			select {
			case <-p.notify.ready:
				p.markReady(p.notify.readyAt)
			case <-p.notify.done:
			}
		})
	}
	go func() { // owned by p: ends when the process has exited and its pipes are drained
		readers.Wait()
		p.waitErr = cmd.Wait()
		if p.notify != nil { // nothing sends any more
			_ = p.notify.Close()
			watcher.Wait()
		}
		close(p.exited)
	}()
	return p, nil
}

// markReady records that the process said it is ready, at the time given.
func (p *proc) markReady(at time.Time) {
	p.readyOnce.Do(func() {
		p.readyAt = at
		close(p.ready)
	})
}

// scan reads one stream line by line until EOF.
func (p *proc) scan(stream string, r io.Reader, isReady func(string, []byte) bool) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		p.tail.write(line)
		if isReady != nil && isReady(stream, line) {
			p.markReady(time.Now())
		}
	}
	_, _ = io.Copy(io.Discard, r) // a line over 1 MB: keep draining so the process never blocks
}

// pid is the process id.
func (p *proc) pid() int { return p.cmd.Process.Pid }

// waitReady waits until the process said it is ready and returns the time
// from start to that line.
func (p *proc) waitReady(timeout time.Duration) (time.Duration, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.ready:
		return p.readyAt.Sub(p.started), nil
	case <-p.exited:
		return 0, fmt.Errorf("%s exited before it was ready (%w); output:\n%s", p.name, p.waitErr, p.tail.String())
	case <-t.C:
		return 0, fmt.Errorf("%s not ready within %v; output:\n%s", p.name, timeout, p.tail.String())
	}
}

// alive reports whether the process is still running.
func (p *proc) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// stop closes stdin, sends SIGTERM and waits at most grace before SIGKILL.
// It returns an error if the process had to be killed or exited non-zero
// for another reason than the signal.
func (p *proc) stop(grace time.Duration) error {
	_ = p.stdin.Close()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.exited:
	case <-t.C:
		_ = p.cmd.Process.Kill()
		t.Reset(grace)
		select {
		case <-p.exited:
		case <-t.C: // a descendant still holds its output pipes
			return fmt.Errorf("%s: output still open %v after SIGKILL", p.name, grace)
		}
		return fmt.Errorf("%s did not exit within %v of SIGTERM; killed", p.name, grace)
	}
	var ee *exec.ExitError
	if errors.As(p.waitErr, &ee) && !ee.Exited() {
		return nil // ended by SIGTERM without handling it: still a clean stop for us
	}
	if p.waitErr != nil {
		return fmt.Errorf("%s: %w; output:\n%s", p.name, p.waitErr, p.tail.String())
	}
	return nil
}

// tailBuffer keeps the last keep bytes of lines written to it.
type tailBuffer struct {
	mu   sync.Mutex
	keep int
	buf  []byte
}

func (t *tailBuffer) write(line []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, line...)
	t.buf = append(t.buf, '\n')
	if len(t.buf) > 2*t.keep { // trim rarely: amortised O(1) per byte
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.keep:]...)
	}
}

// String returns the kept output.
func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf[max(0, len(t.buf)-t.keep):])
}
