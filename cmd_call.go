package main

import (
	"context"
	"errors"
)

// callCmd implements `methodd call`. Not built yet.
type callCmd struct{ io stdio }

// Run reports that the command is not available yet (exit 2).
func (c *callCmd) Run(ctx context.Context, args []string) error {
	return withExit(exitUsage, errors.New("call: not available yet"))
}
