package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/methodd/methodd/engine"
)

// newFlagSet returns a ContinueOnError flag set whose usage text is the given
// synopsis and examples followed by the flag defaults. Parse errors become
// usage errors (exit 2). When w is a *flagRecorder the flag set is also
// handed to it (see completion.go).
func newFlagSet(name, synopsis string, w io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	if r, ok := w.(*flagRecorder); ok {
		r.sets = append(r.sets, fs)
	}
	fs.SetOutput(w)
	fs.Usage = func() {
		fmt.Fprintln(w, strings.TrimSpace(synopsis))
		fmt.Fprintln(w, "\nflags:")
		fs.PrintDefaults()
	}
	return fs
}

// flagRecorder is a Stderr that discards what is written to it and keeps
// every flag set newFlagSet makes for it: completion runs each command with
// -h on it and so sees the flags exactly as the command defines them.
type flagRecorder struct{ sets []*flag.FlagSet }

func (r *flagRecorder) Write(p []byte) (int, error) { return len(p), nil }

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

// isSet reports whether the flag name was given on the command line.
func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// multiFlag is a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// durationUsage is appended to the usage of every duration flag.
const durationUsage = " (seconds or a duration like 30s)"

// durationVar defines a duration flag that also accepts plain seconds (see
// parseDuration); its usage says so. Each command keeps its own range checks.
func durationVar(fs *flag.FlagSet, p *time.Duration, name string, value time.Duration, usage string) {
	*p = value
	fs.Var(durationFlag{p}, name, usage+durationUsage)
}

// durationFlag is a flag.Value holding a time.Duration written either way.
type durationFlag struct{ d *time.Duration }

func (f durationFlag) String() string {
	if f.d == nil {
		return time.Duration(0).String()
	}
	return f.d.String()
}

func (f durationFlag) Set(s string) error {
	d, err := parseDuration(s)
	if err != nil {
		return err
	}
	*f.d = d
	return nil
}

// parseDuration reads a time span: a Go duration ("30s", "1m30s", "-5s") or
// a plain decimal number of seconds ("60", "1.5", "-2"). Signs pass through
// for the caller's range checks; a number too large for a time.Duration,
// or anything else, is an error.
func parseDuration(s string) (time.Duration, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return d, nil
	}
	if !isDecimal(s) {
		return 0, fmt.Errorf("invalid duration %q: want seconds (60, 1.5) or a duration such as 30s or 1m30s", s)
	}
	sec, err := strconv.ParseFloat(s, 64)
	d, ok := engine.Seconds(sec)
	if err != nil || !ok {
		return 0, fmt.Errorf("invalid duration %q: out of range", s)
	}
	return d, nil
}

// isDecimal reports whether s is an optionally signed decimal number
// without exponent: digits with at most one '.', at least one digit.
func isDecimal(s string) bool {
	if s != "" && (s[0] == '+' || s[0] == '-') {
		s = s[1:]
	}
	digits, dots := 0, 0
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			digits++
		case r == '.':
			dots++
		default:
			return false
		}
	}
	return digits > 0 && dots <= 1
}
