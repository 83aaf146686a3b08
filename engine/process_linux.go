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

// commandsSupported is nil: commands run on Linux.
func commandsSupported() error { return nil }

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
	start := time.Now()
	base := ""
	if !r.noCgroup && r.cgroupDir != nil {
		base = r.cgroupDir()
	}
	cmd, jail, err := startJailed(sp, base, stdinR, outW, errW)
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

	k := &killer{pgid: cmd.Process.Pid, jail: jail, escaped: map[int]procInfo{}}
	tctx, cancel := context.WithTimeout(ctx, sp.timeout)
	stop := context.AfterFunc(tctx, func() { k.terminate(ctx.Err() != nil, r.killGrace) })
	werr := cmd.Wait()
	res.duration = time.Since(start)
	stop()
	cancel()
	res.timedOut, res.cancelled, res.escaped = k.finish()

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

// startJailed starts sp with the given pipes, in its own process group and,
// where one can be created under base (the daemon's cgroup; "" for none),
// its own cgroup (escape.go). A start that fails in the cgroup (clone3 or
// CLONE_INTO_CGROUP refused) is retried without.
func startJailed(sp procSpec, base string, stdin, stdout, stderr *os.File) (*exec.Cmd, *cgroupJail, error) {
	build := func(jail *cgroupJail) *exec.Cmd {
		cmd := &exec.Cmd{
			Path: sp.path, Args: sp.args, Env: sp.env, Dir: sp.dir,
			Stdin: stdin, Stdout: stdout, Stderr: stderr,
			SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
		}
		if sp.runAs != nil {
			cmd.SysProcAttr.Credential = sp.runAs.credential()
		}
		if jail != nil {
			cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, int(jail.fd.Fd())
		}
		return cmd
	}
	var jail *cgroupJail
	if base != "" {
		jail = newJail(base)
	}
	cmd := build(jail)
	err := startGated(cmd, sp.limits)
	if err != nil && jail != nil && cmd.Process == nil {
		jail.close()
		jail = nil
		cmd = build(nil)
		err = startGated(cmd, sp.limits)
	}
	if err != nil && jail != nil {
		jail.close()
		jail = nil
	}
	return cmd, jail, err
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
		if ee, ok := errors.AsType[*exec.ExitError](werr); ok {
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
	jail      *cgroupJail      // the command's cgroup; nil in tree mode
	escaped   map[int]procInfo // processes seen outside the group, by pid
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
	k.signalLocked(syscall.SIGTERM, true)
	k.grace = time.AfterFunc(grace, func() {
		k.mu.Lock()
		defer k.mu.Unlock()
		if !k.done {
			k.signalLocked(syscall.SIGKILL, true)
		}
	})
}

// signalLocked sends sig to the group and to the processes that left it:
// the cgroup's, else (leaderAlive) the descendants found in /proc now and
// before.
func (k *killer) signalLocked(sig syscall.Signal, leaderAlive bool) {
	// Look before signalling: a leader that dies orphans its children.
	if k.jail != nil {
		for _, pid := range outsideGroup(k.jail.pids(), k.pgid) {
			if p, ok := readProcInfo(pid); ok {
				k.escaped[pid] = p
			}
		}
		_ = syscall.Kill(-k.pgid, sig)
		k.jail.signal(sig)
		return
	}
	if leaderAlive {
		for _, p := range escapedFrom(k.pgid, k.pgid) {
			k.escaped[p.pid] = p
		}
	}
	_ = syscall.Kill(-k.pgid, sig)
	for _, p := range k.escaped {
		if p.alive() {
			_ = syscall.Kill(p.pid, sig)
		}
	}
}

// finish is called once the leader has been reaped: it disarms the timers
// and kills whatever is left in the group, and in the cgroup (or, in tree
// mode, the escaped processes found at the timeout). It reports whether
// the group was terminated because of the timeout or because the caller
// cancelled, and what escaped the group.
func (k *killer) finish() (timedOut, cancelled bool, esc escapeReport) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.done = true
	if k.grace != nil {
		k.grace.Stop()
	}
	k.signalLocked(syscall.SIGKILL, false)
	if k.jail != nil {
		left := k.jail.close()
		esc.survived = len(left)
		esc.killed = max(len(k.escaped)-len(outsideGroup(left, k.pgid)), 0)
	} else {
		for _, p := range k.escaped {
			if waitGone(p) {
				esc.killed++
			} else {
				esc.survived++
			}
		}
	}
	return k.fired && !k.cancelled, k.fired && k.cancelled, esc
}

// waitGone waits (bounded by escapeWait) for a SIGKILLed process to be gone
// and reports whether it is.
func waitGone(p procInfo) bool {
	deadline := time.Now().Add(escapeWait)
	for p.alive() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}
