package engine

import (
	"errors"
	"time"
)

// ErrCommandsLinuxOnly is why a command method cannot start off Linux:
// process groups, credentials, rlimits and cgroups are Linux's, and
// commands are meant to run on the Linux device. Such a call is answered
// as a command that cannot start (500); loading and checking work anywhere.
var ErrCommandsLinuxOnly = errors.New("command methods run on Linux only")

// procSpec is one command to execute.
type procSpec struct {
	path    string   // program to execute
	args    []string // argv, args[0] included
	env     []string // complete environment
	dir     string   // working directory
	stdin   []byte
	timeout time.Duration
	runAs   *runAs  // credentials to run with; nil = the daemon's
	limits  *limits // rlimits to apply; nil = none
}

// procResult is what a finished command left behind.
type procResult struct {
	exitCode  int // 128+N when killed by signal N
	stdout    []byte
	stderr    []byte
	truncated bool // stdout or stderr went over its cap
	duration  time.Duration
	timedOut  bool         // the method's timeout expired and the group was killed
	cancelled bool         // the caller's context ended first and the group was killed
	limit     *limitStop   // the limit that stopped the command; nil = none (limits.go)
	escaped   escapeReport // processes that had left the group (escape.go)
}

// runner executes commands in their own process group. It is safe for
// concurrent use.
type runner struct {
	killGrace time.Duration // SIGTERM → SIGKILL
	drainWait time.Duration // how long output is read after the leader exits
	noCgroup  bool          // never put commands in their own cgroup: tree mode (escape.go)
	// cgroupDir is the daemon's own cgroup v2 directory, read once
	// (ownCgroupDir); nil is tree mode as well.
	cgroupDir func() string
}
