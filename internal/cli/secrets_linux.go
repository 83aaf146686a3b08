package cli

import (
	"fmt"
	"syscall"
)

// protectMemory makes the process non-dumpable: /proc/PID/environ, mem,
// maps and the like become readable by root (CAP_SYS_PTRACE) only, and
// nobody else may ptrace it, so a command running as the daemon's user
// cannot read the identity from the daemon (see docs/operations.md,
// "Secrets"). Commands do not inherit it: execve resets it.
func protectMemory() error {
	if _, _, errno := syscall.RawSyscall6(syscall.SYS_PRCTL, syscall.PR_SET_DUMPABLE, 0, 0, 0, 0, 0); errno != 0 {
		return fmt.Errorf("prctl(PR_SET_DUMPABLE, 0): %w", errno)
	}
	return nil
}
