package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"
)

const versionUsage = `usage: methodd version [--format text|json]

Print the build: module version, VCS revision and commit time, Go version
and platform.

examples:
  methodd version
  methodd version --format json`

// versionCmd prints the build's version, revision, Go toolchain and
// platform.
type versionCmd struct{ env Env }

// Run implements `methodd version`.
func (c *versionCmd) Run(ctx context.Context, args []string) error {
	fs := newFlagSet("version", versionUsage, c.env.Stderr)
	format := fs.String("format", "text", "output: text (one line) or json")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	v := readVersion(buildInfo(), runtime.GOOS, runtime.GOARCH)
	switch *format {
	case "text":
		fmt.Fprintln(c.env.Stdout, v)
	case "json":
		b, _ := json.Marshal(v) // strings and a bool: never fails
		fmt.Fprintf(c.env.Stdout, "%s\n", b)
	default:
		return usageError("version: --format must be text or json, got %q", *format)
	}
	return nil
}

// buildVersion is what `methodd version` reports.
type buildVersion struct {
	Version  string `json:"version"`            // module version, "(devel)" when unknown
	Revision string `json:"revision,omitempty"` // VCS revision, at most 12 characters
	Dirty    bool   `json:"dirty,omitempty"`    // built from a modified work tree
	Time     string `json:"time,omitempty"`     // the revision's commit time (RFC 3339)
	Go       string `json:"go"`                 // the toolchain, go1.26.8
	OS       string `json:"os"`
	Arch     string `json:"arch"`
}

// revisionLength is how much of a VCS revision is shown, as git's
// abbreviated hashes in a large repository.
const revisionLength = 12

// buildInfo is the binary's build information; without any (a binary
// built without module support), only the Go version.
func buildInfo() *debug.BuildInfo {
	if bi, ok := debug.ReadBuildInfo(); ok {
		return bi
	}
	return &debug.BuildInfo{GoVersion: runtime.Version()}
}

// readVersion extracts the version from bi: Main.Version, and the
// vcs.revision (shortened), vcs.modified and vcs.time settings, which the
// go command records when it builds inside a checkout.
func readVersion(bi *debug.BuildInfo, goos, goarch string) buildVersion {
	v := buildVersion{Version: bi.Main.Version, Go: bi.GoVersion, OS: goos, Arch: goarch}
	if v.Version == "" {
		v.Version = "(devel)"
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Revision = s.Value[:min(len(s.Value), revisionLength)]
		case "vcs.modified":
			v.Dirty = s.Value == "true"
		case "vcs.time":
			v.Time = s.Value
		}
	}
	return v
}

// String is the one-line form: methodd v1.2.3 (rev 0123456789ab+dirty,
// 2026-11-29T10:00:00Z) go1.26.8 linux/amd64; without a known revision
// there is no parenthesis.
func (v buildVersion) String() string {
	s := "methodd " + v.Version
	if v.Revision != "" {
		s += " (rev " + v.Revision
		if v.Dirty {
			s += "+dirty"
		}
		if v.Time != "" {
			s += ", " + v.Time
		}
		s += ")"
	}
	return s + " " + v.Go + " " + v.OS + "/" + v.Arch
}

// moduleVersion is the module's version from the build info, "(devel)"
// when unknown.
func moduleVersion() string {
	return readVersion(buildInfo(), runtime.GOOS, runtime.GOARCH).Version
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
