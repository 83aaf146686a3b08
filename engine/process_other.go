//go:build !linux

package engine

import "context"

// commandsSupported is ErrCommandsLinuxOnly: no command runs off Linux.
func commandsSupported() error { return ErrCommandsLinuxOnly }

// run fails with ErrCommandsLinuxOnly. prepare refuses every command
// before it gets here; this keeps the contract should that change.
func (r *runner) run(context.Context, procSpec) (procResult, error) {
	return procResult{}, ErrCommandsLinuxOnly
}
