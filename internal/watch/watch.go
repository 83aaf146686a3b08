// Package watch delivers each new content of one file, however it was
// written: in place, by an editor's rename dance, by git, by a Kubernetes
// ConfigMap symlink swap, or by delete and re-create.
//
// It watches directories, never the file itself (an inode watch dies with
// the inode an editor replaces): the file's own directory and, when the path
// goes through symlinks, the directory of every link and of the resolved
// target, re-resolved after every burst of events. Events are filtered to
// those names, debounced, and then the file is read through its path; each
// check's outcome is reported as a typed Change, and content identical (by
// SHA-256) to the last content delivered is reported as Unchanged, without
// its bytes.
//
// This package is the module's only importer of fsnotify; of the module it
// imports only the log's attribute keys.
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

	"github.com/methodd/methodd/internal/logkey"
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
	// Logger receives watch problems (Warn) and events (Debug). nil
	// discards.
	Logger *slog.Logger
	// Baseline is the content the caller has already loaded: until the
	// first delivery, a read delivers Data only when the file differs from
	// it (Unchanged otherwise). nil means the file's content when New runs
	// (nothing, if it does not exist then: any content is new).
	Baseline []byte
	// ReadFile reads the file for each check (and for the baseline when
	// Baseline is nil). nil means os.ReadFile, which blocks on a FIFO and
	// reads a device without end: callers watching untrusted paths pass a
	// bounded reader.
	ReadFile func(path string) ([]byte, error)
}

// Change is the outcome of one check of the watched file: a check follows
// every burst of relevant events (debounced), every Trigger, and the start
// of Run. Exactly one of Data, Unchanged and Err describes it.
type Change struct {
	// Data is the file's full content as read, when it differs from the
	// last content delivered (or from Options.Baseline), or when the check
	// was forced; nil otherwise.
	Data []byte
	// Digest is the lowercase hex SHA-256 of the content read; "" when Err
	// is set.
	Digest string
	// Forced is true when the check was asked for by Trigger; its Data is
	// delivered even if identical to the last delivery.
	Forced bool
	// Unchanged is true when the file was read and is identical to the
	// last content delivered (never for a forced check): nothing to do.
	Unchanged bool
	// Err is set when the file could not be read (errors.Is
	// fs.ErrNotExist while it is missing, as between a delete and a
	// create). Watching goes on; the next event checks again.
	Err error
}

// Watcher watches one file. Create it with New, then call Run once.
type Watcher struct {
	path     string // absolute, cleaned
	debounce time.Duration
	log      *slog.Logger
	fs       *fsnotify.Watcher
	trigger  chan struct{}
	read     func(string) ([]byte, error)

	// Owned by the Run goroutine after New returns.
	last    [sha256.Size]byte
	hasLast bool
	watched map[string]bool
	names   map[string]bool
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
		read:     opts.ReadFile,
		watched:  map[string]bool{},
		names:    map[string]bool{},
	}
	if w.read == nil {
		w.read = os.ReadFile
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
		base, _ = w.read(abs)
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

// Run watches until ctx is done and calls fn, from Run's goroutine, with the
// outcome of every check (see Change): new content, an unchanged file, a
// read failure, and every Trigger. fn runs serially: events during fn are
// queued and handled after it returns. Run checks the file once at the start
// (after the debounce, like an event), so a change made between the caller's
// own load and New is not lost. Run returns nil when ctx is done, or an error
// if the underlying watch fails for good; it closes the Watcher either way.
func (w *Watcher) Run(ctx context.Context, fn func(Change)) error {
	defer w.Close()
	// The start-up check is due first, debounced: a writer may be busy.
	b := newDebouncer(w.debounce)
	defer b.stop()
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
			w.log.Debug("config event", logkey.Path, ev.Name, logkey.Op, ev.Op.String())
			b.event()
		case err, ok := <-w.fs.Errors:
			if !ok {
				return errors.New("watch: error stream closed")
			}
			w.log.Warn("config watch error; rescanning", logkey.File, w.path, logkey.Err, err)
			b.event()
		case <-w.trigger:
			b.force()
		case <-b.C():
			if due, forced := b.fire(); due {
				w.check(forced, fn)
			}
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
// reports the outcome to fn.
func (w *Watcher) check(forced bool, fn func(Change)) {
	w.rewatch()
	data, err := w.read(w.path)
	if err != nil {
		fn(Change{Forced: forced, Err: err})
		return
	}
	sum := sha256.Sum256(data)
	digest := hex.EncodeToString(sum[:])
	if w.hasLast && sum == w.last && !forced {
		fn(Change{Digest: digest, Unchanged: true})
		return
	}
	w.last, w.hasLast = sum, true
	fn(Change{Data: data, Digest: digest, Forced: forced})
}

// rewatch resolves the path again and makes the watched directories match
// the chain: new ones added, ones no longer in it removed. The path's own
// directory stays watched always. Failures to add (a directory between
// removal and re-creation) are logged at Debug; the next event retries.
func (w *Watcher) rewatch() {
	c, err := resolve(w.path)
	if err != nil {
		w.log.Warn("config path does not resolve", logkey.File, w.path, logkey.Err, err)
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
			w.log.Debug("cannot watch directory yet", logkey.Dir, d, logkey.Err, err)
			continue
		}
		w.watched[d] = true
	}
}
