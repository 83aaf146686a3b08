//go:build !linux

package engine

// The resources of the limits keys (rlimit.resource). Off Linux limits
// are checked when a file loads but never applied (commands do not run),
// so the values only tell the keys apart.
const (
	rlimitAS = iota + 1
	rlimitFSIZE
	rlimitCPU
	rlimitNOFILE
	rlimitNPROC
)
