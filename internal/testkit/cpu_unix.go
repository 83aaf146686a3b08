//go:build unix

package testkit

import (
	"syscall"
	"time"
)

// ProcessCPU is the CPU time (user + system) the calling process has used so
// far, its children excluded; 0 if it cannot be read. It uses getrusage,
// exact to the microsecond, for per-op benchmark metrics; procstat reads
// any process's CPU but in 10 ms clock ticks.
func ProcessCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
