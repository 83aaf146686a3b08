package engine

import (
	"fmt"
	"strings"
)

// A command's processes that leave its process group (setsid, a daemon's
// fork+setsid+fork, nohup with setsid) escape the group kill. Two modes
// find them (see docs/reliability.md, "inputs and resource bounds"):
//
//   - cgroup: each command starts (clone3 CLONE_INTO_CGROUP) in a child
//     cgroup of the daemon's own cgroup v2 cgroup. Nothing the command does
//     takes its descendants out of it (moving needs write access to an
//     ancestor's cgroup.procs), so at the timeout and once the leader exits
//     every process in it is killed (cgroup.kill, else one by one), then the
//     cgroup is removed.
//   - tree: no usable cgroup (cgroup v1 only, no write access, no
//     Delegate=yes). At the timeout the descendants of the still-running
//     leader are found in /proc (parent links, and the sessions and groups
//     they lead) and killed with the group. A process that was orphaned
//     before (a double fork whose middle process exited) or that escapes a
//     command that exits normally is not found.

// escapeReport counts the processes that had left the command's process
// group and were still running when it timed out or its leader exited.
type escapeReport struct {
	killed   int // were killed
	survived int // could not be killed (still running when the call ended)
}

// String is the reply's wording; "" when nothing escaped.
func (e escapeReport) String() string {
	var parts []string
	if e.killed > 0 {
		parts = append(parts, fmt.Sprintf("%d that had left its process group killed", e.killed))
	}
	if e.survived > 0 {
		parts = append(parts, fmt.Sprintf("could not kill %d processes that left its process group", e.survived))
	}
	return strings.Join(parts, "; ")
}
