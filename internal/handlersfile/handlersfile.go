// Package handlersfile is the one load path of a handlers file: the
// permission check, the read, and engine.Parse (which validates and
// compiles). `methodd run` loads through it at start-up and on every reload,
// `methodd check` and `methodd call` before they report or call, so that all
// four see a file the same way and say the same things about it.
//
// Permission problems are not load errors: Load reports them in
// Loaded.Unsafe and leaves the verdict to the caller. The daemon refuses such
// a file (it names commands the daemon runs as its user); check and call
// warn, with the same text and fix.
package handlersfile

import (
	"errors"
	"fmt"

	"github.com/methodd/methodd/engine"
	"github.com/methodd/methodd/internal/confperm"
)

// Options are the inputs of a load besides the path.
type Options struct {
	// DaemonUID is the user the file and its directories may belong to
	// besides root (os.Geteuid() of the daemon); see confperm.Check.
	DaemonUID int
	// Engine configures the Set (logger, clocks, process runner limits).
	Engine engine.Options
}

// Loaded is one load of a handlers file.
type Loaded struct {
	// Set is the compiled file; nil when the load failed.
	Set *engine.Set
	// Data is the content the Set was parsed from.
	Data []byte
	// Unsafe is non-nil when someone other than root or Options.DaemonUID
	// could change the file or a directory above it: errors.Is
	// confperm.ErrUnsafe, and one *confperm.Error (errors.As) per path at
	// fault, each naming its fix.
	Unsafe error
}

// Load checks path's permissions, reads it (ReadFile: a regular file of at
// most MaxSize bytes, within ReadTimeout) and parses it. The error is an
// engine.Diagnostics (errors.As) when the file has problems, or wraps the
// failure to inspect or read path (ErrNotRegular, ErrTooLarge,
// ErrReadTimeout, fs.ErrNotExist...); Loaded.Unsafe is set in every case
// where the check could be made, so a caller can report both.
func Load(path string, o Options) (Loaded, error) {
	l, err := check(path, o)
	if err != nil {
		return l, err
	}
	data, err := ReadFile(path)
	if err != nil {
		return l, fmt.Errorf("load %s: %w", path, err)
	}
	return parse(l, path, data, o)
}

// Parse is Load for bytes the caller has already read from path (the
// reloader's watcher hashes what it reads, so that what is applied is what
// was seen, and reads it with ReadFile): the permission check of path, then
// engine.Parse of data. Data over MaxSize is refused with ErrTooLarge.
func Parse(path string, data []byte, o Options) (Loaded, error) {
	l, err := check(path, o)
	if err != nil {
		return l, err
	}
	if len(data) > MaxSize {
		return l, fmt.Errorf("load %s: %w", path, tooLarge(int64(len(data))))
	}
	return parse(l, path, data, o)
}

// check runs confperm.Check: a refusal goes to Unsafe, a failure to
// inspect the path is the error.
func check(path string, o Options) (Loaded, error) {
	var l Loaded
	err := confperm.Check(path, o.DaemonUID)
	if errors.Is(err, confperm.ErrUnsafe) {
		l.Unsafe = err
		return l, nil
	}
	return l, err
}

func parse(l Loaded, path string, data []byte, o Options) (Loaded, error) {
	set, err := engine.Parse(path, data, o.Engine)
	if err != nil {
		return l, err
	}
	l.Set, l.Data = set, data
	return l, nil
}

// UnsafeWarnings turns Loaded.Unsafe into one file-level warning per path
// at fault, each with the text and fix of the daemon's refusal, for check
// and call to print beside the file's own diagnostics.
func UnsafeWarnings(file string, unsafe error) engine.Diagnostics {
	var ds engine.Diagnostics
	for _, e := range unsafeErrors(unsafe) {
		ds = append(ds, engine.Diagnostic{File: file, Message: e.Error(), Severity: engine.SeverityWarning})
	}
	return ds
}

// unsafeErrors lists the *confperm.Error values of err (a join of them).
func unsafeErrors(err error) []*confperm.Error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []*confperm.Error
		for _, x := range j.Unwrap() {
			out = append(out, unsafeErrors(x)...)
		}
		return out
	}
	if e, ok := errors.AsType[*confperm.Error](err); ok {
		return []*confperm.Error{e}
	}
	return nil
}
