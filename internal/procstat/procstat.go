// Package procstat reads processes from Linux's /proc: a process's CPU
// time, memory and open file descriptors, and the process table (parents,
// groups, states), for the measurements and leak checks of the test suites
// (test/bench, test/reliability). Each reader has a pure parser of the
// file's text beside it. Stdlib only; test code only: the methodd binary
// never links it.
package procstat

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// ClockTick is the kernel's USER_HZ, the unit of utime/stime in
// /proc/PID/stat. It is 100 on every Linux architecture Go supports
// (sysconf(_SC_CLK_TCK) is a compile-time constant of the kernel ABI).
const ClockTick = 10 * time.Millisecond

// CPU is a process's CPU time from /proc/PID/stat.
type CPU struct {
	Self     time.Duration // utime + stime: every thread of the process
	Children time.Duration // cutime + cstime: children it has waited for
}

// path is /proc/PID/name, or /proc/self/name for pid 0.
func path(pid int, name string) string {
	if pid == 0 {
		return "/proc/self/" + name
	}
	return "/proc/" + strconv.Itoa(pid) + "/" + name
}

// ReadCPU reads /proc/PID/stat (pid 0: this process).
func ReadCPU(pid int) (CPU, error) {
	b, err := os.ReadFile(path(pid, "stat"))
	if err != nil {
		return CPU{}, err
	}
	return ParseStat(b)
}

// ParseStat extracts utime, stime, cutime and cstime (fields 14-17) from the
// content of /proc/PID/stat. The command name (field 2) may hold spaces and
// parentheses, so fields are counted after its last ')'.
func ParseStat(b []byte) (CPU, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return CPU{}, fmt.Errorf("stat: no command name")
	}
	f := strings.Fields(string(b[i+1:])) // f[0] is field 3 (state)
	if len(f) < 15 {
		return CPU{}, fmt.Errorf("stat: %d fields after the command name, want ≥ 15", len(f))
	}
	var ticks [4]int64
	for k := range ticks {
		v, err := strconv.ParseInt(f[11+k], 10, 64)
		if err != nil {
			return CPU{}, fmt.Errorf("stat field %d: %w", 14+k, err)
		}
		ticks[k] = v
	}
	return CPU{
		Self:     time.Duration(ticks[0]+ticks[1]) * ClockTick,
		Children: time.Duration(ticks[2]+ticks[3]) * ClockTick,
	}, nil
}

// ReadStatusKB reads /proc/PID/status (pid 0: this process) and returns the
// named kB fields ("VmRSS", "VmHWM", "RssAnon", ...) in the order asked.
func ReadStatusKB(pid int, fields ...string) ([]int64, error) {
	b, err := os.ReadFile(path(pid, "status"))
	if err != nil {
		return nil, err
	}
	return ParseStatusKB(b, fields...)
}

// ParseStatusKB returns the named kB fields of /proc/PID/status content; a
// field that is missing or not "N kB" is an error.
func ParseStatusKB(b []byte, fields ...string) ([]int64, error) {
	vals := make([]int64, len(fields))
	found := make([]bool, len(fields))
	for line := range strings.SplitSeq(string(b), "\n") {
		key, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		for i, want := range fields {
			if key != want {
				continue
			}
			f := strings.Fields(rest)
			if len(f) != 2 || f[1] != "kB" {
				return nil, fmt.Errorf("status %s: unexpected %q", key, rest)
			}
			kb, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("status %s: %w", key, err)
			}
			vals[i], found[i] = kb, true
		}
	}
	for i, ok := range found {
		if !ok {
			return nil, fmt.Errorf("status: no %s", fields[i])
		}
	}
	return vals, nil
}

// ResetPeak resets the process's VmHWM to its current RSS (writing 5 to
// /proc/PID/clear_refs, Linux ≥ 4.0), so that the next read reports the peak
// of what happened in between. It reports whether that worked; when it did
// not, VmHWM is the peak since the process started.
func ResetPeak(pid int) bool {
	return os.WriteFile(path(pid, "clear_refs"), []byte("5"), 0) == nil
}
