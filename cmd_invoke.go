package main

import (
	"context"
	"errors"
)

// invokeCmd implements `methodd invoke`. Not built yet.
type invokeCmd struct{ io stdio }

// Run reports that the command is not available yet (exit 2).
func (c *invokeCmd) Run(ctx context.Context, args []string) error {
	return withExit(exitUsage, errors.New("invoke: not available yet"))
}
