package engine

import (
	"context"
	"log/slog"
	"os/exec"
	"syscall"
	"time"

	"github.com/methodd/methodd/internal/logkey"
)

// startSession starts sp in a new session (setsid): no controlling
// terminal, its own process group, stdin, stdout and stderr on /dev/null,
// so that no signal sent to the daemon's group and no pipe ties it to the
// daemon. A goroutine waits for it and logs its outcome; that goroutine is
// the one the daemon does not wait for at shutdown, since the command is
// meant to outlive it (it is then reparented and reaped by init).
func (s *Set) startSession(method, rid string, sp procSpec) {
	cmd := &exec.Cmd{
		Path: sp.path, Args: sp.args, Env: sp.env, Dir: sp.dir,
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	if sp.runAs != nil {
		cmd.SysProcAttr.Credential = sp.runAs.credential()
	}
	start := time.Now()
	if err := startGated(cmd, sp.limits); err != nil {
		s.log.Error("detached command did not start", logkey.Method, method, logkey.RequestID, rid, logkey.Err, err)
		return
	}
	pid := cmd.Process.Pid
	s.log.Info("detached command started", logkey.Method, method, logkey.RequestID, rid, logkey.PID, pid)
	go func() {
		werr := cmd.Wait()
		code := exitCode(cmd.ProcessState, werr)
		level := slog.LevelInfo
		if code != 0 {
			level = slog.LevelWarn
		}
		s.log.Log(context.Background(), level, "detached command finished", logkey.Method, method, logkey.RequestID, rid,
			logkey.PID, pid, logkey.ExitCode, code, logkey.DurationMs, time.Since(start).Milliseconds())
	}()
}
