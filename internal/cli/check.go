package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/methodd/methodd/engine"
	"github.com/methodd/methodd/internal/handlersfile"
)

const checkUsage = `usage: methodd check [--config FILE] [--format text|json] [FILE]
       methodd check --print-schema

Validate a handlers file offline, exactly as "methodd run" loads it (the same
permission check, read and compile), and print every problem as
FILE:LINE:COL: message (warnings too).

A file that someone other than root or you could change is valid here but
refused by "methodd run": each path at fault is printed as a warning naming
its fix, and the summary line says that run refuses the file.

--print-schema prints the JSON Schema of handlers files (the one installed
as /usr/share/methodd/handlers.schema.json) for editors, and checks nothing.

Exit status: 0 the file is valid (warnings, unsafe permissions included);
1 it is not, or it cannot be read; 2 usage error.

examples:
  methodd check --config /etc/methodd/handlers.yaml
  methodd check handlers.yaml.example
  methodd check --format json handlers.yaml | jq .
  methodd check --print-schema > handlers.schema.json`

// checkCmd implements `methodd check`.
type checkCmd struct{ env Env }

// Run validates the file; it returns errSilent with exit 1 after printing
// the diagnostics of an invalid file.
func (c *checkCmd) Run(ctx context.Context, args []string) error {
	fs := newFlagSet("check", checkUsage, c.env.Stderr)
	config := fs.String("config", engine.DefaultConfigPath, "handlers file to validate")
	format := fs.String("format", "text", "output: text (FILE:LINE:COL: message) or json (a list of diagnostics)")
	printSchema := fs.Bool("print-schema", false, "print the JSON Schema of handlers files and exit")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *printSchema {
		return c.printSchema(fs.Args())
	}
	path, err := configArg(fs.Args(), *config, isSet(fs, "config"))
	if err != nil {
		return err
	}
	if *format != "text" && *format != "json" {
		return usageError("check: unknown --format %q (use text or json)", *format)
	}
	l, err := handlersfile.Load(path, handlersfile.Options{DaemonUID: os.Geteuid()})
	var diags engine.Diagnostics
	switch {
	case errors.As(err, &diags):
	case err != nil:
		return withExit(exitFailure, fmt.Errorf("check: %w", err))
	default:
		diags = l.Set.Warnings()
	}
	diags = append(handlersfile.UnsafeWarnings(path, l.Unsafe), diags...)
	if err := printDiagnostics(c.env.Stdout, *format, diags); err != nil {
		return err
	}
	if l.Set == nil {
		return withExit(exitFailure, errSilent)
	}
	if *format == "text" {
		fmt.Fprintln(c.env.Stdout, checkSummary(path, l))
	}
	return nil
}

// printSchema writes engine.Schema() to stdout; a FILE is a usage error,
// since nothing is checked.
func (c *checkCmd) printSchema(rest []string) error {
	if len(rest) > 0 {
		return usageError("check: --print-schema takes no FILE")
	}
	if _, err := c.env.Stdout.Write(engine.Schema()); err != nil {
		return fmt.Errorf("check: %w", err)
	}
	return nil
}

// checkSummary is the last line of a valid file's text report.
func checkSummary(path string, l handlersfile.Loaded) string {
	names := l.Set.Methods()
	s := fmt.Sprintf("%s: OK, %d methods: %s", path, len(names), strings.Join(names, ", "))
	if l.Unsafe != nil {
		s += `; but "methodd run" refuses it until the permissions above are fixed`
	}
	return s
}

// configArg picks the handlers file: a positional FILE or --config, not two
// different ones.
func configArg(rest []string, config string, configSet bool) (string, error) {
	switch {
	case len(rest) == 0:
		return config, nil
	case len(rest) > 1:
		return "", usageError("check: expected at most one FILE, got %d arguments", len(rest))
	case configSet && rest[0] != config:
		return "", usageError("check: give the file either as --config or as FILE, not both")
	}
	return rest[0], nil
}

// printDiagnostics writes diags as text lines or as one JSON list.
func printDiagnostics(w io.Writer, format string, diags engine.Diagnostics) error {
	if format == "json" {
		if diags == nil {
			diags = engine.Diagnostics{}
		}
		b, err := json.Marshal(diags)
		if err != nil {
			return fmt.Errorf("check: %w", err)
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	for _, d := range diags {
		if _, err := fmt.Fprintln(w, d.String()); err != nil {
			return err
		}
	}
	return nil
}
