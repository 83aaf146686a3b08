package main

import (
	"context"
	"fmt"
	"runtime"
)

// versionCmd prints the module version and the Go toolchain.
type versionCmd struct{ io stdio }

// Run implements `methodd version`.
func (c *versionCmd) Run(ctx context.Context, args []string) error {
	fs := newFlagSet("version", "usage: methodd version", c.io.err)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	fmt.Fprintf(c.io.out, "methodd %s %s %s/%s\n", moduleVersion(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
}
