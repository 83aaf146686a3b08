package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is the kernel's USER_HZ, the unit of utime/stime in
// /proc/PID/stat. It is 100 on every Linux architecture Go supports
// (sysconf(_SC_CLK_TCK) is a compile-time constant of the kernel ABI).
const clockTick = 10 * time.Millisecond

// cpuTimes is a process's CPU time from /proc/PID/stat.
type cpuTimes struct {
	self     time.Duration // utime + stime: every thread of the process
	children time.Duration // cutime + cstime: children it has waited for
}

// readCPU reads /proc/PID/stat.
func readCPU(pid int) (cpuTimes, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return cpuTimes{}, err
	}
	return parseStat(b)
}

// parseStat extracts utime, stime, cutime and cstime (fields 14-17) from the
// content of /proc/PID/stat. The command name (field 2) may hold spaces and
// parentheses, so fields are counted after its last ')'.
func parseStat(b []byte) (cpuTimes, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return cpuTimes{}, fmt.Errorf("stat: no command name")
	}
	f := strings.Fields(string(b[i+1:])) // f[0] is field 3 (state)
	if len(f) < 15 {
		return cpuTimes{}, fmt.Errorf("stat: %d fields after the command name, want ≥ 15", len(f))
	}
	var ticks [4]int64
	for k := range ticks {
		v, err := strconv.ParseInt(f[11+k], 10, 64)
		if err != nil {
			return cpuTimes{}, fmt.Errorf("stat field %d: %w", 14+k, err)
		}
		ticks[k] = v
	}
	return cpuTimes{
		self:     time.Duration(ticks[0]+ticks[1]) * clockTick,
		children: time.Duration(ticks[2]+ticks[3]) * clockTick,
	}, nil
}

// memory is a process's resident set from /proc/PID/status, in bytes.
type memory struct {
	rss  int64 // VmRSS: now
	peak int64 // VmHWM: the high-water mark since start or the last resetPeak
}

// readMemory reads VmRSS and VmHWM from /proc/PID/status.
func readMemory(pid int) (memory, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memory{}, err
	}
	return parseStatus(b)
}

// parseStatus extracts VmRSS and VmHWM (kB) from /proc/PID/status content.
func parseStatus(b []byte) (memory, error) {
	var m memory
	var seen int
	for line := range strings.SplitSeq(string(b), "\n") {
		key, rest, ok := strings.Cut(line, ":")
		if !ok || (key != "VmRSS" && key != "VmHWM") {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return m, fmt.Errorf("status %s: unexpected %q", key, rest)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return m, fmt.Errorf("status %s: %w", key, err)
		}
		if key == "VmRSS" {
			m.rss = kb * 1024
		} else {
			m.peak = kb * 1024
		}
		seen++
	}
	if seen != 2 {
		return m, fmt.Errorf("status: VmRSS or VmHWM missing")
	}
	return m, nil
}

// resetPeak resets the process's VmHWM to its current RSS (writing 5 to
// /proc/PID/clear_refs, Linux ≥ 4.0), so that the next readMemory reports the
// peak of what happened in between. It reports whether that worked; when it
// did not, VmHWM is the peak since the process started.
func resetPeak(pid int) bool {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0) == nil
}

// loadAverage returns the first three fields of /proc/loadavg.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
