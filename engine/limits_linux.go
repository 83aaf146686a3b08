package engine

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The resources of the limits keys (rlimit.resource).
const (
	rlimitAS     = unix.RLIMIT_AS
	rlimitFSIZE  = unix.RLIMIT_FSIZE
	rlimitCPU    = unix.RLIMIT_CPU
	rlimitNOFILE = unix.RLIMIT_NOFILE
	rlimitNPROC  = unix.RLIMIT_NPROC
)

// apply sets every limit on the process pid. Soft and hard limits are the
// same (the command cannot raise them), except that the hard CPU limit is
// one second above the soft one: the kernel sends SIGXCPU at the soft
// limit and SIGKILL at the hard one, and only SIGXCPU names the cause.
func (ls *limits) apply(pid int) error {
	for _, r := range ls.list {
		rl := unix.Rlimit{Cur: r.value, Max: r.value}
		if r.resource == unix.RLIMIT_CPU {
			rl.Max++
		}
		if err := unix.Prlimit(pid, r.resource, &rl, nil); err != nil {
			if err == unix.EPERM {
				return fmt.Errorf("cannot set limits.%s (%s): %w (raising a limit above the daemon's own, or limiting a command that runs as another user, needs CAP_SYS_RESOURCE)", r.key, r.text, err)
			}
			return fmt.Errorf("cannot set limits.%s (%s): %w", r.key, r.text, err)
		}
	}
	return nil
}

// blame names the limit that stopped a finished command, if any: SIGXCPU
// (or SIGKILL after using up its CPU time) is limits.cpu, SIGXFSZ is
// limits.output. A shell reports a child killed by signal N as exit status
// 128+N, which counts as that signal. RLIMIT_AS makes allocations fail,
// which programs report in their own ways, so with limits.memory set any
// death by SIGKILL, SIGSEGV, SIGABRT or SIGBUS, or any other non-zero exit,
// probably is the memory limit. nil when no limit is to blame.
func (ls *limits) blame(ps *os.ProcessState) *limitStop {
	if ls == nil || ps == nil {
		return nil
	}
	ws, _ := ps.Sys().(syscall.WaitStatus)
	sig, cause := syscall.Signal(0), fmt.Sprintf("exit status %d", ps.ExitCode())
	switch code := ps.ExitCode(); {
	case ws.Signaled():
		sig = ws.Signal()
		cause = unix.SignalName(sig)
	case code > 128 && code < 128+65:
		sig = syscall.Signal(code - 128)
		cause += ", " + unix.SignalName(sig) + " in a child"
	}
	stop := func(key string, probable bool) *limitStop {
		r, _ := ls.get(key)
		return &limitStop{rlimit: r, cause: cause, signaled: sig != 0, probable: probable}
	}
	cpu, hasCPU := ls.get("cpu")
	_, hasOutput := ls.get("output")
	_, hasMemory := ls.get("memory")
	usedCPU := ps.UserTime()+ps.SystemTime() >= time.Duration(cpu.value)*time.Second
	switch {
	case hasCPU && (sig == syscall.SIGXCPU || sig == syscall.SIGKILL && ws.Signaled() && usedCPU):
		return stop("cpu", false)
	case hasOutput && sig == syscall.SIGXFSZ:
		return stop("output", false)
	case hasMemory && (sig == syscall.SIGKILL || sig == syscall.SIGSEGV || sig == syscall.SIGABRT || sig == syscall.SIGBUS):
		return stop("memory", true)
	case hasMemory && ps.ExitCode() != 0 && !ws.Signaled():
		return stop("memory", true)
	}
	return nil
}

// gateScript holds a command at the start line until the daemon has set its
// limits with prlimit: the daemon then writes one line to fd 3 and the
// shell execs env(1), which clears the environment, sets exactly the
// command's entries in their order and execs the program; the program
// inherits the limits before running any code of its own. "$@" carries the
// entries and argv as they are, with no shell interpretation; fd 3 is
// closed for the program. When the gate closes without that line (the
// limits could not be set) the shell exits 125 without running anything.
const gateScript = `read _ <&3 && exec ` + envPath + ` -i -- "$@" 3<&-; exit 125`

const (
	gateName = "methodd-limits" // $0 of the gate shell, in its error messages
	envPath  = "/usr/bin/env"
)

// startGated starts cmd; with limits, through the gate, which it opens once
// the limits are set on the waiting process. Go cannot run code between
// fork and exec, hence the gate. The program keeps its pid, process group,
// stdin, stdout, stderr, environment (entries and order) and working
// directory; its argv[0] becomes the resolved path of the program. On
// error nothing of the command is left running.
func startGated(cmd *exec.Cmd, ls *limits) error {
	if ls == nil {
		return cmd.Start()
	}
	prog := cmd.Path
	if !strings.Contains(prog, "/") {
		prog = "./" + prog // env would search PATH for a bare name
	}
	if strings.Contains(prog, "=") {
		return fmt.Errorf("a program whose path contains \"=\" (%s) cannot run with limits: env(1) would take it for a variable", prog)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("create the limits gate: %w", err)
	}
	defer w.Close()
	args := make([]string, 0, 5+len(cmd.Env)+len(cmd.Args))
	args = append(args, gateName, "-c", gateScript, gateName)
	args = append(args, cmd.Env...)
	args = append(args, prog)
	cmd.Args = append(args, cmd.Args[1:]...)
	cmd.Path, cmd.Env = shellPath, []string{}
	cmd.ExtraFiles = []*os.File{r}
	err = cmd.Start()
	r.Close()
	if err != nil {
		return err
	}
	if err := ls.apply(cmd.Process.Pid); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return err
	}
	_, _ = w.Write([]byte{'\n'}) // fails only when the shell is gone already
	return nil
}

// get returns the entry for key.
func (ls *limits) get(key string) (rlimit, bool) {
	for _, r := range ls.list {
		if r.key == key {
			return r, true
		}
	}
	return rlimit{}, false
}
