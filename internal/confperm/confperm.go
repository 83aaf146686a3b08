// Package confperm refuses a configuration file that someone other than root
// or the daemon's own user could change. handlers.yaml names commands the
// daemon runs as its user; whoever can rewrite the file, or replace it by
// renaming within a directory above it, can run commands as that user.
package confperm

import (
	"errors"
	"fmt"
	"io/fs"
	"os/user"
	"strconv"
)

// ErrUnsafe is matched (errors.Is) by every permission or ownership refusal,
// as opposed to a failure to inspect the path at all.
var ErrUnsafe = errors.New("unsafe config permissions")

// Error is one path of the chain that fails the check.
type Error struct {
	Path   string      // the file or directory at fault
	Mode   fs.FileMode // its mode
	UID    int         // its owner
	Reason string      // what is wrong, e.g. "is group-writable"
	Fix    string      // a command that fixes it
}

// Error names the path, its mode and owner, what is wrong and the fix.
func (e *Error) Error() string {
	return fmt.Sprintf("%s (mode %s, owner %s) %s; it could be changed to run commands as the daemon's user (fix: %s)",
		e.Path, e.Mode, owner(e.UID), e.Reason, e.Fix)
}

// Is makes errors.Is(err, ErrUnsafe) true.
func (e *Error) Is(target error) bool { return target == ErrUnsafe }

// owner formats a uid with its user name when one is known.
func owner(uid int) string {
	s := "uid " + strconv.Itoa(uid)
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		s += " (" + u.Username + ")"
	}
	return s
}
