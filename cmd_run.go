package main

import (
	"context"
	"errors"
)

// runCmd implements `methodd run`. Not built yet.
type runCmd struct{ io stdio }

// Run reports that the command is not available yet (exit 2).
func (c *runCmd) Run(ctx context.Context, args []string) error {
	return withExit(exitUsage, errors.New("run: not available yet"))
}
