//go:build !linux

package cli

// protectMemory does nothing where there is no prctl(PR_SET_DUMPABLE).
func protectMemory() error { return nil }
