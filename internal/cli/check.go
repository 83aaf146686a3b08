package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/methodd/methodd/engine"
)

const checkUsage = `usage: methodd check [--config FILE] [--format text|json] [FILE]

Validate a handlers file offline, exactly as "methodd run" loads it, and print
every problem as FILE:LINE:COL: message (warnings too). Exit 0 when the file is
valid (warnings allowed), 1 when it is not.

examples:
  methodd check --config /etc/methodd/handlers.yaml
  methodd check handlers.yaml.example
  methodd check --format json handlers.yaml | jq .`

// checkCmd implements `methodd check`.
type checkCmd struct{ io stdio }

// Run validates the file; it returns errSilent with exit 1 after printing
// the diagnostics of an invalid file.
func (c *checkCmd) Run(ctx context.Context, args []string) error {
	fs := newFlagSet("check", checkUsage, c.io.err)
	config := fs.String("config", engine.DefaultConfigPath, "handlers file to validate")
	format := fs.String("format", "text", "output: text (FILE:LINE:COL: message) or json (a list of diagnostics)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	configSet := false
	fs.Visit(func(f *flag.Flag) { configSet = configSet || f.Name == "config" })
	path, err := configArg(fs.Args(), *config, configSet)
	if err != nil {
		return err
	}
	if *format != "text" && *format != "json" {
		return usageError("check: unknown --format %q (use text or json)", *format)
	}
	set, err := engine.Load(path, engine.Options{})
	var diags engine.Diagnostics
	switch {
	case errors.As(err, &diags):
	case err != nil:
		return withExit(exitFailure, fmt.Errorf("check: %w", err))
	default:
		diags = set.Warnings()
	}
	if err := printDiagnostics(c.io, *format, diags); err != nil {
		return err
	}
	if set == nil {
		return withExit(exitFailure, errSilent)
	}
	if *format == "text" {
		names := set.Methods()
		fmt.Fprintf(c.io.out, "%s: OK, %d methods: %s\n", path, len(names), strings.Join(names, ", "))
	}
	return nil
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
func printDiagnostics(s stdio, format string, diags engine.Diagnostics) error {
	if format == "json" {
		if diags == nil {
			diags = engine.Diagnostics{}
		}
		b, err := json.Marshal(diags)
		if err != nil {
			return fmt.Errorf("check: %w", err)
		}
		_, err = fmt.Fprintf(s.out, "%s\n", b)
		return err
	}
	for _, d := range diags {
		if _, err := fmt.Fprintln(s.out, d.String()); err != nil {
			return err
		}
	}
	return nil
}
