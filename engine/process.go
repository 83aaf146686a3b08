package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// procSpec is one command to execute.
type procSpec struct {
	path    string   // program to execute
	args    []string // argv, args[0] included
	env     []string // complete environment
	dir     string   // working directory
	stdin   []byte
	timeout time.Duration
	runAs   *runAs  // credentials to run with; nil = the daemon's
	limits  *limits // rlimits to apply; nil = none
}

// procResult is what a finished command left behind.
type procResult struct {
	exitCode  int // 128+N when killed by signal N
	stdout    []byte
	stderr    []byte
	truncated bool // stdout or stderr went over its cap
	duration  time.Duration
	timedOut  bool       // the method's timeout expired and the group was killed
	cancelled bool       // the caller's context ended first and the group was killed
	limit     *limitStop // the limit that stopped the command; nil = none (limits.go)
}

// runner executes commands in their own process group. It is safe for
// concurrent use.
type runner struct {
	killGrace time.Duration // SIGTERM → SIGKILL
	drainWait time.Duration // how long output is read after the leader exits
}

// run starts sp and waits for it. The child runs in a new process group;
// when the timeout expires or ctx ends the whole group gets SIGTERM, then
// SIGKILL after the grace. When the leader exits, anything left in its group
// is killed, and output still held open by escaped processes is read for at
// most drainWait. The leader is always reaped. The error is non-nil only when
// the command could not be started (its limits could not be set included).
// With sp.runAs the child gets those credentials; with sp.limits it starts
// through the limits gate (startGated) and res.limit names a limit that
// stopped it.
func (r *runner) run(ctx context.Context, sp procSpec) (procResult, error) {
	var res procResult
	files, err := openPipes()
	if err != nil {
		return res, fmt.Errorf("create pipes: %w", err)
	}
	stdinR, stdinW, outR, outW, errR, errW := files[0], files[1], files[2], files[3], files[4], files[5]
	cmd := &exec.Cmd{
		Path: sp.path, Args: sp.args, Env: sp.env, Dir: sp.dir,
		Stdin: stdinR, Stdout: outW, Stderr: errW,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
	}
	if sp.runAs != nil {
		cmd.SysProcAttr.Credential = sp.runAs.credential()
	}
	start := time.Now()
	err = startGated(cmd, sp.limits)
	stdinR.Close()
	outW.Close()
	errW.Close()
	if err != nil {
		stdinW.Close()
		outR.Close()
		errR.Close()
		return res, err
	}
	out, errOut := capture{limit: MaxReplyBytes}, capture{limit: MaxReplyBytes}
	var wg sync.WaitGroup
	wg.Go(func() { out.drain(outR) })
	wg.Go(func() { errOut.drain(errR) })
	wg.Go(func() { feed(stdinW, sp.stdin) })

	k := &killer{pgid: cmd.Process.Pid}
	tctx, cancel := context.WithTimeout(ctx, sp.timeout)
	stop := context.AfterFunc(tctx, func() { k.terminate(ctx.Err() != nil, r.killGrace) })
	werr := cmd.Wait()
	res.duration = time.Since(start)
	stop()
	cancel()
	res.timedOut, res.cancelled = k.finish()

	deadline := time.Now().Add(r.drainWait)
	_ = outR.SetReadDeadline(deadline)
	_ = errR.SetReadDeadline(deadline)
	_ = stdinW.SetWriteDeadline(deadline)
	wg.Wait()

	res.exitCode = exitCode(cmd.ProcessState, werr)
	res.stdout, res.stderr = out.buf, errOut.buf
	res.truncated = out.truncated || errOut.truncated
	res.limit = sp.limits.blame(cmd.ProcessState)
	return res, nil
}

// openPipes returns stdin, stdout and stderr pipes as read/write pairs.
func openPipes() ([]*os.File, error) {
	var files []*os.File
	for range 3 {
		r, w, err := os.Pipe()
		if err != nil {
			for _, f := range files {
				f.Close()
			}
			return nil, err
		}
		files = append(files, r, w)
	}
	return files, nil
}

// feed writes the payload to the child's stdin and closes it. A child that
// does not read its stdin is fine: the write fails with EPIPE or times out.
func feed(w *os.File, data []byte) {
	_, _ = w.Write(data)
	w.Close()
}

// exitCode maps a wait status to the shell convention: the exit status, or
// 128+N for a process killed by signal N.
func exitCode(ps *os.ProcessState, werr error) int {
	if ps == nil {
		var ee *exec.ExitError
		if errors.As(werr, &ee) {
			ps = ee.ProcessState
		} else {
			return -1
		}
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

// killer signals one process group. After finish it never signals again,
// so a recycled process-group id is never hit.
type killer struct {
	mu        sync.Mutex
	pgid      int
	done      bool
	fired     bool
	cancelled bool
	grace     *time.Timer
}

// terminate sends SIGTERM to the group and arms SIGKILL after grace.
func (k *killer) terminate(cancelled bool, grace time.Duration) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.done {
		return
	}
	k.fired, k.cancelled = true, cancelled
	_ = syscall.Kill(-k.pgid, syscall.SIGTERM)
	k.grace = time.AfterFunc(grace, func() {
		k.mu.Lock()
		defer k.mu.Unlock()
		if !k.done {
			_ = syscall.Kill(-k.pgid, syscall.SIGKILL)
		}
	})
}

// finish is called once the leader has been reaped: it disarms the timers
// and kills whatever is left in the group. It reports whether the group was
// terminated because of the timeout or because the caller cancelled.
func (k *killer) finish() (timedOut, cancelled bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.done = true
	if k.grace != nil {
		k.grace.Stop()
	}
	_ = syscall.Kill(-k.pgid, syscall.SIGKILL)
	return k.fired && !k.cancelled, k.fired && k.cancelled
}
