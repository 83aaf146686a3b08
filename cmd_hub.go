package main

import (
	"context"
	"errors"
)

// hubCmd implements `methodd hub`. Not built yet.
type hubCmd struct{ io stdio }

// Run reports that the command is not available yet (exit 2).
func (c *hubCmd) Run(ctx context.Context, args []string) error {
	return withExit(exitUsage, errors.New("hub: not available yet"))
}
