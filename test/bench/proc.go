package main

import (
	"os"
	"strings"

	"github.com/methodd/methodd/internal/procstat"
)

// memory is a process's resident set from /proc/PID/status, in bytes.
type memory struct {
	rss  int64 // VmRSS: now
	peak int64 // VmHWM: the high-water mark since start or the last procstat.ResetPeak
}

// readMemory reads VmRSS and VmHWM from /proc/PID/status.
func readMemory(pid int) (memory, error) {
	kb, err := procstat.ReadStatusKB(pid, "VmRSS", "VmHWM")
	if err != nil {
		return memory{}, err
	}
	return memory{rss: kb[0] * 1024, peak: kb[1] * 1024}, nil
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
