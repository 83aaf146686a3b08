// Package watch delivers each new content of one file, however it was
// written: in place, by an editor's rename dance, by git, by a Kubernetes
// ConfigMap symlink swap, or by delete and re-create.
//
// It watches directories, never the file itself (an inode watch dies with
// the inode an editor replaces): the file's own directory and, when the path
// goes through symlinks, the directory of every link and of the resolved
// target, re-resolved after every burst of events. Events are filtered to
// those names, debounced, and then the file is read through its path; bytes
// identical (by SHA-256) to the last content seen are not delivered.
//
// This package is the module's only importer of fsnotify and imports nothing
// else of the module.
package watch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// DefaultDebounce is the quiet time after the last relevant event before the
// file is read, when Options.Debounce is zero.
const DefaultDebounce = 100 * time.Millisecond

// maxDelayFactor caps how long a steady stream of events can postpone a read:
// at most this many debounce periods after the first event of a burst.
const maxDelayFactor = 10

// Options configures a Watcher. The zero value is ready to use.
type Options struct {
	// Debounce is the quiet time after the last relevant event before the
	// file is read. Zero means DefaultDebounce.
	Debounce time.Duration
	// Logger receives watch problems (Warn) and skipped events (Debug). nil
	// discards.
	Logger *slog.Logger
	// Baseline is the content the caller has already loaded; a change is
	// delivered only when the file differs from it. nil means the file's
	// content when New runs (nothing, if it does not exist then).
	Baseline []byte
}

// Change is one delivery of the watched file's content.
type Change struct {
	// Data is the file's full content as read; nil when Err is set.
	Data []byte
	// Digest is the lowercase hex SHA-256 of Data.
	Digest string
	// Forced is true when the read was asked for by Trigger; such a change is
	// delivered even if Data is identical to the last delivery.
	Forced bool
	// Err is set only on a forced change whose file could not be read
	// (missing, unreadable). Unforced read failures are logged, not
	// delivered, and watching goes on.
	Err error
}

// Watcher watches one file. Create it with New, then call Run once.
type Watcher struct {
	path     string // absolute, cleaned
	debounce time.Duration
	log      *slog.Logger
	fs       *fsnotify.Watcher
	trigger  chan struct{}

	// Owned by the Run goroutine after New returns.
	last    [sha256.Size]byte
	hasLast bool
	watched map[string]bool
	names   map[string]bool
	lastErr string
}

// New starts watching path's directory (and the directories of the
// symlinks it goes through and of its target). It fails when path's own
// directory cannot be watched; the file itself may be missing. Events
// arriving before Run is called are kept and handled by Run. Call Run, or
// Close if Run will never be called.
func New(path string, opts Options) (*Watcher, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", path, err)
	}
	fs, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", path, err)
	}
	w := &Watcher{
		path:     abs,
		debounce: opts.Debounce,
		log:      opts.Logger,
		fs:       fs,
		trigger:  make(chan struct{}, 1),
		watched:  map[string]bool{},
		names:    map[string]bool{},
	}
	if w.debounce <= 0 {
		w.debounce = DefaultDebounce
	}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	if err := fs.Add(filepath.Dir(abs)); err != nil {
		fs.Close()
		return nil, fmt.Errorf("watch %s: %w", filepath.Dir(abs), err)
	}
	w.watched[filepath.Dir(abs)] = true
	w.rewatch()
	base := opts.Baseline
	if base == nil {
		base, _ = os.ReadFile(abs)
	}
	if base != nil {
		w.last, w.hasLast = sha256.Sum256(base), true
	}
	return w, nil
}

// Path returns the absolute path being watched.
func (w *Watcher) Path() string { return w.path }

// Trigger asks Run to read the file now and deliver it even if identical to
// the last delivery (SIGHUP semantics: the operator asked, so the caller
// reloads). Triggers arriving while one is pending coalesce. It never
// blocks and is safe from any goroutine.
func (w *Watcher) Trigger() {
	select {
	case w.trigger <- struct{}{}:
	default:
	}
}

// Close releases the watch. Run calls it on return; calling it again, or
// instead of Run, is harmless.
func (w *Watcher) Close() error {
	if err := w.fs.Close(); err != nil && !errors.Is(err, fsnotify.ErrClosed) {
		return err
	}
	return nil
}

// Run watches until ctx is done and calls fn, from Run's goroutine, once for
// each new distinct content and once per Trigger. fn runs serially: events
// during fn are queued and handled after it returns. Before waiting for
// events Run reads the file once (after the debounce), so a change made between the caller's own
// load and New is not lost. Run returns nil when ctx is done, or an error if
// the underlying watch fails for good; it closes the Watcher either way.
func (w *Watcher) Run(ctx context.Context, fn func(Change)) error {
	defer w.Close()
	// The start-up check, debounced like an event: a writer may be busy.
	timer := time.NewTimer(w.debounce)
	defer timer.Stop()
	first := time.Now() // first event of the pending burst
	forced := false
	pending := true
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.fs.Events:
			if !ok {
				return errors.New("watch: event stream closed")
			}
			if !w.relevant(ev) {
				continue
			}
			w.log.Debug("config event", "path", ev.Name, "op", ev.Op.String())
			first, pending = w.arm(timer, first, pending), true
		case err, ok := <-w.fs.Errors:
			if !ok {
				return errors.New("watch: error stream closed")
			}
			w.log.Warn("config watch error; rescanning", "path", w.path, "err", err)
			first, pending = w.arm(timer, first, pending), true
		case <-w.trigger:
			forced = true
			stopTimer(timer)
			timer.Reset(0)
			pending = true
		case <-timer.C:
			if !pending {
				continue
			}
			w.check(forced, fn)
			first, pending, forced = time.Time{}, false, false
		}
	}
}

// arm (re)starts the debounce timer for a relevant event: debounce after this
// event, but no later than maxDelayFactor debounces after the burst's first.
func (w *Watcher) arm(t *time.Timer, first time.Time, pending bool) time.Time {
	now := time.Now()
	if !pending || first.IsZero() {
		first = now
	}
	d := w.debounce
	if limit := first.Add(maxDelayFactor * w.debounce).Sub(now); d > limit {
		d = max(limit, 0)
	}
	stopTimer(t)
	t.Reset(d)
	return first
}

// stopTimer stops t and drains a fire that was not received, so Reset starts
// clean.
func stopTimer(t *time.Timer) {
	if !t.Stop() {
		select {
		case <-t.C:
		default:
		}
	}
}

// relevant reports whether ev concerns a path in the resolution chain: the
// config path, a symlink on the way, or the final target. An event on a
// watched directory itself (deleted, moved) is relevant too.
func (w *Watcher) relevant(ev fsnotify.Event) bool {
	name := filepath.Clean(ev.Name)
	if w.watched[name] && ev.Has(fsnotify.Remove|fsnotify.Rename) {
		delete(w.watched, name) // the kernel dropped it; rewatch re-adds
		return true
	}
	return w.names[name] || w.watched[name]
}

// check re-resolves the chain, updates the watches, reads the file and
// delivers it when new (or forced).
func (w *Watcher) check(forced bool, fn func(Change)) {
	w.rewatch()
	data, err := os.ReadFile(w.path)
	if err != nil {
		if forced {
			fn(Change{Forced: true, Err: err})
			return
		}
		w.logReadError(err)
		return
	}
	w.lastErr = ""
	sum := sha256.Sum256(data)
	if w.hasLast && sum == w.last && !forced {
		w.log.Debug("config unchanged; not reloading", "path", w.path)
		return
	}
	w.last, w.hasLast = sum, true
	fn(Change{Data: data, Digest: hex.EncodeToString(sum[:]), Forced: forced})
}

// logReadError logs an unforced read failure once per distinct message; a
// missing file is expected between a delete and a create and logged at Debug.
func (w *Watcher) logReadError(err error) {
	if errors.Is(err, os.ErrNotExist) {
		w.log.Debug("config missing; waiting for it to come back", "path", w.path)
		return
	}
	if msg := err.Error(); msg != w.lastErr {
		w.lastErr = msg
		w.log.Warn("config unreadable; waiting for the next change", "path", w.path, "err", err)
	}
}

// rewatch resolves the path again and makes the watched directories match
// the chain: new ones added, ones no longer in it removed. The path's own
// directory stays watched always. Failures to add (a directory between
// removal and re-creation) are logged at Debug; the next event retries.
func (w *Watcher) rewatch() {
	c, err := resolve(w.path)
	if err != nil {
		w.log.Warn("config path does not resolve", "path", w.path, "err", err)
	}
	names := map[string]bool{w.path: true}
	for _, n := range c.names() {
		names[n] = true
	}
	w.names = names
	want := map[string]bool{filepath.Dir(w.path): true}
	for _, d := range c.dirs() {
		want[d] = true
	}
	for d := range w.watched {
		if !want[d] {
			_ = w.fs.Remove(d) // already gone with its directory: fine
			delete(w.watched, d)
		}
	}
	for d := range want {
		if w.watched[d] {
			continue
		}
		if err := w.fs.Add(d); err != nil {
			w.log.Debug("cannot watch directory yet", "dir", d, "err", err)
			continue
		}
		w.watched[d] = true
	}
}
