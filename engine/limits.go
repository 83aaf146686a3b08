package engine

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"gopkg.in/yaml.v3"
)

// limits is a method's limits: the rlimits of its command, in the order
// they were written.
type limits struct {
	list []rlimit
}

// rlimit is one entry of limits.
type rlimit struct {
	key      string // memory, cpu, ...
	resource int    // unix.RLIMIT_*
	value    uint64 // bytes, seconds or a count
	text     string // the value as written, for messages: 64MiB, 10s
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

// parseLimits reads limits: {memory, cpu, open_files, processes, output}.
// nil when there is an error (reported at its node) or nothing is set.
func (l *loader) parseLimits(n *yaml.Node, path string) *limits {
	before := l.errCount()
	ls := &limits{}
	for _, f := range l.mapping(n, path, limitKeys()) {
		p := join(path, f.key)
		r := rlimit{key: f.key}
		var ok bool
		switch f.key {
		case "memory":
			r.resource = unix.RLIMIT_AS
			r.value, r.text, ok = l.size(f.val, p)
		case "output":
			r.resource = unix.RLIMIT_FSIZE
			r.value, r.text, ok = l.size(f.val, p)
		case "cpu":
			r.resource = unix.RLIMIT_CPU
			r.value, r.text, ok = l.cpuSeconds(f.val, p)
		case "open_files":
			r.resource = unix.RLIMIT_NOFILE
			r.value, r.text, ok = l.count(f.val, p)
		case "processes":
			r.resource = unix.RLIMIT_NPROC
			r.value, r.text, ok = l.count(f.val, p)
		}
		if ok {
			ls.list = append(ls.list, r)
		}
	}
	if l.errCount() > before || len(ls.list) == 0 {
		return nil
	}
	return ls
}

// sizeRE is a size with an optional unit.
var sizeRE = regexp.MustCompile(`^([0-9]+) ?([KMGT]i?B|kB|B)?$`)

// shortUnitRE is a size with a one-letter unit, which is ambiguous.
var shortUnitRE = regexp.MustCompile(`^([0-9]+) ?([kKmMgGtT])$`)

// sizeUnits are the multipliers of the units sizeRE accepts.
var sizeUnits = map[string]uint64{
	"": 1, "B": 1,
	"kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
	"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
}

const sizeForms = "a number of bytes or a whole number with a unit: B, KiB, MiB, GiB, TiB (powers of 1024) or kB, MB, GB, TB (powers of 1000), such as 64MiB or 100MB"

// size decodes a positive byte size: an integer (bytes) or "64MiB".
func (l *loader) size(n *yaml.Node, path string) (uint64, string, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		l.errorf(n, path, "must be a size: %s; got %s", sizeForms, describe(n))
		return 0, "", false
	}
	m := sizeRE.FindStringSubmatch(strings.ReplaceAll(n.Value, "_", ""))
	if m == nil {
		if strings.HasPrefix(n.Value, "-") {
			l.errorf(n, path, "must be positive, got %s", n.Value)
		} else if m := shortUnitRE.FindStringSubmatch(n.Value); m != nil {
			u := strings.ToUpper(m[2])
			l.errorf(n, path, "invalid size %q: say %s%siB (powers of 1024) or %s%sB (powers of 1000)", n.Value, m[1], u, m[1], u)
		} else {
			l.errorf(n, path, "invalid size %q: use %s", n.Value, sizeForms)
		}
		return 0, "", false
	}
	v, err := strconv.ParseUint(m[1], 10, 64)
	mult := sizeUnits[m[2]]
	if err != nil || v > math.MaxInt64/mult {
		l.errorf(n, path, "size %s is too large", n.Value)
		return 0, "", false
	}
	if v == 0 {
		l.errorf(n, path, "must be positive, got %s", n.Value)
		return 0, "", false
	}
	text := n.Value
	if m[2] == "" {
		text += " bytes"
	}
	return v * mult, text, true
}

// cpuSeconds decodes a CPU time: a duration of whole seconds, at least 1s
// (RLIMIT_CPU counts seconds).
func (l *loader) cpuSeconds(n *yaml.Node, path string) (uint64, string, bool) {
	d, ok := l.duration(n, path)
	if !ok {
		return 0, "", false
	}
	if d < time.Second || d%time.Second != 0 {
		l.errorf(n, path, "must be a whole number of seconds, at least 1s (the kernel counts CPU time in seconds), got %s", n.Value)
		return 0, "", false
	}
	return uint64(d / time.Second), n.Value, true
}

// count decodes a positive integer.
func (l *loader) count(n *yaml.Node, path string) (uint64, string, bool) {
	v, ok := l.intValue(n, path)
	if !ok {
		return 0, "", false
	}
	if v < 1 {
		l.errorf(n, path, "must be at least 1, got %d", v)
		return 0, "", false
	}
	return uint64(v), n.Value, true
}

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

// limitStop is a command stopped by one of its limits, or, for memory,
// probably stopped by it.
type limitStop struct {
	rlimit
	cause    string // SIGXCPU, "exit status 1", ...
	signaled bool   // the command died by a signal (or a shell's child did)
	probable bool   // a guess: only memory is never certain
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

// message is the error text of the reply.
func (s *limitStop) message(method string) string {
	if s.probable {
		return fmt.Sprintf("method %q stopped (%s); limits.%s (%s) was probably exceeded", method, s.cause, s.key, s.text)
	}
	what := "it used up its CPU time"
	if s.key == "output" {
		what = "it tried to write a file larger than that"
	}
	return fmt.Sprintf("method %q was stopped by limits.%s (%s): %s (%s)", method, s.key, s.text, what, s.cause)
}

// limitPayload is the reply payload of a command its limit stopped:
// {"error": ..., "limit": "limits.cpu", "exitCode": N, "stdout": ...,
// "stderr": ...}, the output cut to fit as in commandPayload (appendResult).
func limitPayload(method string, res *procResult) []byte {
	msg := boundText(res.limit.message(method))
	b := make([]byte, 0, 256)
	b = append(b, `{"error":`...)
	b = appendJSONString(b, msg)
	b = append(b, `,"limit":`...)
	b = appendJSONString(b, "limits."+res.limit.key)
	b = append(b, ',')
	return append(appendResult(b, res), '}')
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
