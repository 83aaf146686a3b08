package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Exit codes shared by every subcommand (design §1). invoke adds 3, 4 and 5.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// stdio carries the process's streams and environment into a subcommand, so
// that tests can call run directly with buffers and a fake environment.
type stdio struct {
	in     io.Reader
	out    io.Writer
	err    io.Writer
	getenv func(string) string
}

// command is one subcommand: it parses its own flags from args and returns
// an error; only run turns that error into an exit code.
type command interface {
	Run(ctx context.Context, args []string) error
}

// commandInfo is one row of the static dispatch table.
type commandInfo struct {
	summary string
	make    func(stdio) command
}

// commands is the dispatch table. It is built by a function, not kept in a
// package variable, so that nothing in package main is mutable state.
func commands() map[string]commandInfo {
	return map[string]commandInfo{
		"run":     {"answer direct methods from handlers.yaml (the device daemon)", func(s stdio) command { return &runCmd{io: s} }},
		"invoke":  {"call a direct method through the IoT Hub service API", func(s stdio) command { return &invokeCmd{io: s} }},
		"hub":     {"run a local IoT-Hub-compatible endpoint (MQTT/TLS + REST)", func(s stdio) command { return &hubCmd{io: s} }},
		"check":   {"validate a handlers.yaml offline", func(s stdio) command { return &checkCmd{io: s} }},
		"call":    {"run one handler locally, without any hub", func(s stdio) command { return &callCmd{io: s} }},
		"version": {"print the version", func(s stdio) command { return &versionCmd{io: s} }},
	}
}

// exitError carries the exit code a subcommand decided on. Errors without
// one exit 1.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageError marks err as a usage or input problem (exit 2).
func usageError(format string, a ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, a...)}
}

// withExit attaches an exit code to err; nil stays nil.
func withExit(code int, err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: code, err: err}
}

// errSilent is returned by a command that has already printed everything the
// user needs (for example check's diagnostics); run prints nothing more.
var errSilent = errors.New("")

// run executes one methodd invocation and returns its exit code.
func run(ctx context.Context, args []string, s stdio) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		printUsage(s.err)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	info, ok := commands()[args[0]]
	if !ok {
		fmt.Fprintf(s.err, "methodd: unknown command %q\n\n", args[0])
		printUsage(s.err)
		return exitUsage
	}
	err := info.make(s).Run(ctx, args[1:])
	return exitCode(err, s.err)
}

// exitCode prints err (unless it is silent or flag help) and maps it to a code.
func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return exitOK
	}
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	code := exitFailure
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
	}
	if msg := err.Error(); msg != "" {
		fmt.Fprintf(stderr, "methodd: %s\n", msg)
	}
	return code
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: methodd <command> [flags] [args]")
	fmt.Fprintln(w, "\ncommands:")
	cmds := commands()
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-8s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'methodd <command> -h' for a command's flags and examples.")
}

// newFlagSet returns a ContinueOnError flag set whose usage text is the given
// synopsis and examples followed by the flag defaults. Parse errors become
// usage errors (exit 2).
func newFlagSet(name, synopsis string, w io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(w)
	fs.Usage = func() {
		fmt.Fprintln(w, strings.TrimSpace(synopsis))
		fmt.Fprintln(w, "\nflags:")
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args into fs; a flag error is a usage error, -h is flag.ErrHelp.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &exitError{code: exitUsage, err: errSilent}
	}
	return nil
}
