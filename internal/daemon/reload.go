package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/methodd/methodd/engine"
	"github.com/methodd/methodd/internal/confperm"
	"github.com/methodd/methodd/internal/sdnotify"
	"github.com/methodd/methodd/internal/watch"
)

// reloaderConfig is what `methodd run` hands the reloader.
type reloaderConfig struct {
	// Path is the config file as given by --config (diagnostics name it).
	Path string
	// Baseline is the bytes the Engine's active Set was parsed from; an
	// identical file is not reloaded. nil: whatever is on disk when the
	// reloader is created.
	Baseline []byte
	// Parse is engine.Parse with the daemon's engine.Options bound.
	Parse func(file string, data []byte) (*engine.Set, error)
	// Engine serves calls; a successful reload swaps its Set.
	Engine *engine.Engine
	// Notifier gets RELOADING=1 … READY=1 + STATUS= around each reload; nil
	// sends nothing.
	Notifier *sdnotify.Notifier
	// Logger gets "reloaded", "reload rejected" and each diagnostic; nil
	// discards.
	Logger *slog.Logger
	// DaemonUID is the uid the config may be owned by besides root
	// (os.Geteuid()); see confperm.Check.
	DaemonUID int
	// Status composes the STATUS= line from the reload summary (to add the
	// connection state); nil sends the summary alone.
	Status func(reload string) string
	// Debounce is passed to watch.Options; zero is its default.
	Debounce time.Duration
	// Now stamps reload results; nil is time.Now.
	Now func() time.Time
}

// reloader applies changes of the config file to a running Engine: file
// events and SIGHUP are handled one at a time in Run's goroutine, each as a
// transaction (permission check, parse, swap; the old Set stays on any
// failure). See design §3 "Hot reload" and style §8.
type reloader struct {
	cfg reloaderConfig
	log *slog.Logger
	w   *watch.Watcher

	mu      sync.Mutex
	summary string // last reload result, for STATUS=
}

// newReloader starts watching cfg.Path's directory; it fails when that
// cannot be watched. Call Run to apply changes.
func newReloader(cfg reloaderConfig) (*reloader, error) {
	if cfg.Engine == nil || cfg.Parse == nil {
		return nil, errors.New("reloader: Engine and Parse are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "reload")
	w, err := watch.New(cfg.Path, watch.Options{Debounce: cfg.Debounce, Logger: log, Baseline: cfg.Baseline})
	if err != nil {
		return nil, err
	}
	r := &reloader{cfg: cfg, log: log, w: w}
	if s := cfg.Engine.Current(); s != nil {
		r.summary = fmt.Sprintf("%d methods, config %.12s", len(s.Methods()), s.Digest())
	}
	return r, nil
}

// Run applies config changes until ctx is done. It owns SIGHUP for its
// duration (a SIGHUP forces a reload even of identical bytes) and returns
// nil when ctx ends, or the watcher's error if watching fails for good.
func (r *reloader) Run(ctx context.Context) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				r.log.Info("SIGHUP received; reloading", "file", r.cfg.Path)
				r.w.Trigger()
			}
		}
	})
	r.log.Info("watching config for changes", "file", r.cfg.Path)
	err := r.w.Run(ctx, r.apply)
	cancel()
	wg.Wait()
	return err
}

// Reload asks Run to reload now, even if the file is unchanged (what SIGHUP
// does). It does not wait; the outcome is logged and notified.
func (r *reloader) Reload() { r.w.Trigger() }

// Summary is the last reload result, one line, for STATUS= and the log.
func (r *reloader) Summary() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.summary
}

// apply is one reload transaction, run serially by the watcher.
func (r *reloader) apply(c watch.Change) {
	trigger := "file"
	if c.Forced {
		trigger = "signal"
	}
	start := r.cfg.Now()
	_ = r.cfg.Notifier.Reloading() // a notify failure must not block a reload
	set, err := r.load(c)
	if err != nil {
		r.reject(err, c, trigger)
		return
	}
	r.cfg.Engine.Swap(set)
	for _, d := range set.Warnings() {
		r.log.Warn("config warning", "diagnostic", d.String())
	}
	r.log.Info("reloaded", "file", r.cfg.Path, "digest", set.Digest(), "methods", len(set.Methods()),
		"trigger", trigger, "durationMs", r.cfg.Now().Sub(start).Milliseconds())
	r.finish(fmt.Sprintf("%d methods, config %.12s reloaded at %s", len(set.Methods()), set.Digest(), start.Format(time.RFC3339)))
}

// load checks permissions and parses the change's bytes. The bytes are the
// ones the watcher hashed, so what is applied is what was seen.
func (r *reloader) load(c watch.Change) (*engine.Set, error) {
	if c.Err != nil {
		return nil, fmt.Errorf("read %s: %w", r.cfg.Path, c.Err)
	}
	if err := confperm.Check(r.cfg.Path, r.cfg.DaemonUID); err != nil {
		return nil, err
	}
	return r.cfg.Parse(r.cfg.Path, c.Data)
}

// loadConfig is the start-up half of the reload transaction, for `methodd
// run`: the permission check (errors.Is confperm.ErrUnsafe: refuse to
// start), the read, and parse (an engine.Diagnostics error for a bad file).
// It returns the Set and the bytes it was parsed from, for
// reloaderConfig.Baseline.
func loadConfig(path string, daemonUID int, parse func(file string, data []byte) (*engine.Set, error)) (*engine.Set, []byte, error) {
	if err := confperm.Check(path, daemonUID); err != nil {
		return nil, nil, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("load %s: %w", path, err)
	}
	set, err := parse(path, data)
	if err != nil {
		return nil, nil, err
	}
	return set, data, nil
}

// reject logs a failed reload once (with every diagnostic at its position)
// and reports it; the active Set is untouched.
func (r *reloader) reject(err error, c watch.Change, trigger string) {
	var diags engine.Diagnostics
	switch {
	case errors.As(err, &diags):
		for _, d := range diags { // positions first, the verdict last
			level := slog.LevelError
			if d.Severity == engine.SeverityWarning {
				level = slog.LevelWarn
			}
			r.log.Log(context.Background(), level, "config problem", "diagnostic", d.String())
		}
		r.log.Error("reload rejected; keeping the active handlers", "file", r.cfg.Path, "digest", c.Digest,
			"trigger", trigger, "problems", len(diags))
		err = fmt.Errorf("%d problems, first %s", len(diags), diags[0].String())
	case errors.Is(err, confperm.ErrUnsafe):
		r.log.Error("reload refused: unsafe config permissions; keeping the active handlers", "file", r.cfg.Path,
			"trigger", trigger, "err", err)
	default:
		r.log.Error("reload failed; keeping the active handlers", "file", r.cfg.Path, "trigger", trigger, "err", err)
	}
	active := "no handlers"
	if s := r.cfg.Engine.Current(); s != nil {
		active = fmt.Sprintf("%d methods, config %.12s", len(s.Methods()), s.Digest())
	}
	r.finish(fmt.Sprintf("%s; reload rejected at %s: %v", active, r.cfg.Now().Format(time.RFC3339), err))
}

// finish records the summary and tells systemd the reload is over.
func (r *reloader) finish(summary string) {
	r.mu.Lock()
	r.summary = summary
	r.mu.Unlock()
	status := summary
	if r.cfg.Status != nil {
		status = r.cfg.Status(summary)
	}
	if err := r.cfg.Notifier.Notify(sdnotify.FieldReady, sdnotify.StatusField(status)); err != nil {
		r.log.Warn("cannot notify systemd", "err", err)
	}
}
