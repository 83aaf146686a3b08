package cli

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
)

// versionCmd prints the module version and the Go toolchain.
type versionCmd struct{ env Env }

// Run implements `methodd version`.
func (c *versionCmd) Run(ctx context.Context, args []string) error {
	fs := newFlagSet("version", "usage: methodd version", c.env.Stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	fmt.Fprintf(c.env.Stdout, "methodd %s %s %s/%s\n", moduleVersion(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
}

// moduleVersion is the module's version from the build info, "(devel)"
// when unknown.
func moduleVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// productToken names this program to hubs: "methodd/<version>" ("devel"
// for a build without a module version), the service API's User-Agent and
// the MQTT username's DeviceClientType.
func productToken() string {
	v := moduleVersion()
	if v == "(devel)" {
		v = "devel"
	}
	return "methodd/" + v
}
