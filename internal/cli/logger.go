package main

import (
	"io"
	"log/slog"
	"runtime/debug"
	"strings"
)

// newLogger builds a command's logger on w from --log-format and
// --log-level; bad values are usage errors naming cmd.
func newLogger(w io.Writer, cmd, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, usageError("%s: unknown --log-level %q (use debug, info, warn or error)", cmd, level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usageError("%s: unknown --log-format %q (use text or json)", cmd, format)
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

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:@%+,", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
