package cli

import (
	"io"
	"log/slog"
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
