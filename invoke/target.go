package invoke

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Target names the identity a method is invoked on: a device, or a module of
// a device when Module is not empty.
type Target struct {
	Device string
	Module string
}

// String renders the target as "device" or "device/module", the form
// ParseTarget reads.
func (t Target) String() string {
	if t.Module == "" {
		return t.Device
	}
	return t.Device + "/" + t.Module
}

// ErrTarget is wrapped by every target parse error.
var ErrTarget = errors.New("invalid target")

// ParseTarget reads "DEVICE" or "DEVICE/MODULE". Device and module IDs cannot
// contain '/', so at most one is allowed; neither part may be empty or contain
// white space or control characters.
func ParseTarget(s string) (Target, error) {
	dev, mod, hasMod := strings.Cut(s, "/")
	switch {
	case dev == "":
		return Target{}, fmt.Errorf("%w %q: empty device id", ErrTarget, s)
	case hasMod && mod == "":
		return Target{}, fmt.Errorf("%w %q: empty module id", ErrTarget, s)
	case strings.Contains(mod, "/"):
		return Target{}, fmt.Errorf("%w %q: more than one '/'", ErrTarget, s)
	case strings.IndexFunc(s, badIDRune) >= 0:
		return Target{}, fmt.Errorf("%w %q: space or control character", ErrTarget, s)
	case len(dev) > 128 || len(mod) > 128:
		return Target{}, fmt.Errorf("%w %q: an id is longer than 128 characters", ErrTarget, s)
	}
	return Target{Device: dev, Module: mod}, nil
}

func badIDRune(r rune) bool { return r <= ' ' || r == 0x7f }

// ReadTargets reads a devices file: one DEVICE or DEVICE/MODULE per line;
// surrounding white space, blank lines and lines starting with '#' are
// ignored. The first bad line fails the whole read, naming its line number.
func ReadTargets(r io.Reader) ([]Target, error) {
	var out []Target
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64*1024)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		t, err := ParseTarget(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		out = append(out, t)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read devices: %w", err)
	}
	return out, nil
}
