package main

import (
	"context"
	"errors"
)

// checkCmd implements `methodd check`. Not built yet.
type checkCmd struct{ io stdio }

// Run reports that the command is not available yet (exit 2).
func (c *checkCmd) Run(ctx context.Context, args []string) error {
	return withExit(exitUsage, errors.New("check: not available yet"))
}
