//go:build linux

package engine

import "syscall"

func killPID(pid int) error { return syscall.Kill(pid, syscall.SIGKILL) }
