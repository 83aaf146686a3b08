// Package cli is methodd's command line: one file per subcommand, each a
// type with Run(ctx, args) error that parses its own flags, and Run, which
// dispatches to them and alone turns their errors into exit codes (design
// §1). Commands get their streams and environment as an Env, so that tests
// call Run with buffers and a fake environment.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

// Env is what a command gets from its process: the standard streams and the
// environment.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	Getenv func(string) string
}

// OS is the process's own Env.
func OS() Env {
	return Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}
}

// Run executes one methodd invocation (args without the program name) and
// returns its exit code. ctx ends the command (SIGINT/SIGTERM in main).
func Run(ctx context.Context, args []string, env Env) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		printUsage(env.Stderr)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	info, ok := commands()[args[0]]
	if !ok {
		fmt.Fprintf(env.Stderr, "methodd: unknown command %q\n\n", args[0])
		printUsage(env.Stderr)
		return exitUsage
	}
	err := info.make(env).Run(ctx, args[1:])
	return exitCode(err, env.Stderr)
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
	if ee, ok := errors.AsType[*exitError](err); ok {
		code = ee.code
	}
	if msg := err.Error(); msg != "" {
		fmt.Fprintf(stderr, "methodd: %s\n", msg)
	}
	return code
}
