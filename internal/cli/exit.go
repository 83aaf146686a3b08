package cli

import (
	"errors"
	"fmt"
)

// Exit codes shared by every subcommand (design §1). invoke adds 3, 4 and 5.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// Exit codes of `methodd invoke` beyond the shared 0/1/2 (design §1).
const (
	exitUnreachable = 3 // device or module not found, or not online (404001, 404010, 404103)
	exitTimeout     = 4 // the device did not answer in time (504101)
	exitHubError    = 5 // any other hub, auth or network error
)

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
// user needs (for example check's diagnostics); Run prints nothing more.
var errSilent = errors.New("")
