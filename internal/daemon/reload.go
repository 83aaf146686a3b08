package daemon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"time"

	"github.com/methodd/methodd/engine"
	"github.com/methodd/methodd/internal/handlersfile"
	"github.com/methodd/methodd/internal/logkey"
	"github.com/methodd/methodd/internal/watch"
)

// ReloadOutcome is what one reload did.
type ReloadOutcome int

// Reload outcomes. Only ReloadApplied changes the active handlers.
const (
	// ReloadApplied: the file's new content is serving.
	ReloadApplied ReloadOutcome = iota + 1
	// ReloadUnchanged: the file changed on disk but its content is what is
	// serving (an editor's rewrite of identical bytes; the watcher's
	// start-up check). Nothing was done and systemd was not told.
	ReloadUnchanged
	// ReloadRejected: the file has errors (Diagnostics) or could not be
	// read on a forced reload (Err); the active handlers stay.
	ReloadRejected
	// ReloadRefused: someone other than root or the daemon's user could
	// change the file (Err names each path and its fix); the active
	// handlers stay.
	ReloadRefused
)

func (o ReloadOutcome) String() string {
	switch o {
	case ReloadApplied:
		return "applied"
	case ReloadUnchanged:
		return "unchanged"
	case ReloadRejected:
		return "rejected"
	case ReloadRefused:
		return "refused"
	}
	return fmt.Sprintf("ReloadOutcome(%d)", int(o))
}

// ReloadResult is the typed outcome of one reload, reported to
// Config.OnReload after systemd has been told.
type ReloadResult struct {
	Outcome ReloadOutcome
	// Forced is true for a reload asked for on Config.Reload (SIGHUP),
	// which applies the file even if its content is unchanged.
	Forced bool
	// Digest is the SHA-256 of the content read; "" when it was not read.
	Digest string
	// Active describes the handlers serving after the reload, as STATUS=
	// shows them ("7 methods, config 1a2b3c4d5e6f").
	Active string
	// Diagnostics are the file's problems when Rejected (errors and
	// warnings, in file order), its warnings when Applied.
	Diagnostics engine.Diagnostics
	// Err is why a reload was Rejected or Refused.
	Err error
	// At is when the reload started; Duration how long it took.
	At       time.Time
	Duration time.Duration
}

// reloader applies changes of the handlers file to a running Engine: file
// changes and reload requests are handled one at a time in Run's goroutine,
// each as a transaction (the one load path: permission check and parse; a
// swap on success; the old Set stays on any failure). See design §3 "Hot
// reload" and style §8.
type reloader struct {
	path    string
	load    handlersfile.Options
	eng     *engine.Engine
	sd      *systemd
	log     *slog.Logger
	now     func() time.Time
	w       *watch.Watcher
	report  func(ReloadResult)
	lastErr string // the last unforced read failure logged, so that it is logged once
}

// newReloader starts watching cfg.Path's directory; it fails when that
// cannot be watched. baseline is the content eng serves now.
func newReloader(cfg Config, baseline []byte, eng *engine.Engine, sd *systemd, log *slog.Logger) (*reloader, error) {
	log = log.With(logkey.Component, "reload")
	w, err := watch.New(cfg.Path, watch.Options{Debounce: cfg.Debounce, Logger: log, Baseline: baseline, ReadFile: handlersfile.ReadFile})
	if err != nil {
		return nil, err
	}
	onReload, obs := cfg.OnReload, cfg.Observer
	if obs == nil {
		obs = noObserver{}
	}
	report := func(res ReloadResult) {
		reloadObserved(obs, res)
		if onReload != nil {
			onReload(res)
		}
	}
	return &reloader{path: cfg.Path, load: cfg.Load, eng: eng, sd: sd, log: log, now: cfg.Now, w: w, report: report}, nil
}

// run applies changes until ctx is done; each receive on requests forces a
// reload even of identical bytes. It returns nil when ctx ends, or the
// watcher's error if watching fails for good.
func (r *reloader) run(ctx context.Context, requests <-chan struct{}) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-requests:
				r.log.Info("reload requested", logkey.File, r.path)
				r.w.Trigger()
			}
		}
	}()
	r.log.Info("watching config for changes", logkey.File, r.path)
	err := r.w.Run(ctx, r.apply)
	cancel()
	<-done
	return err
}

// apply handles one check of the file, run serially by the watcher.
func (r *reloader) apply(c watch.Change) {
	switch {
	case c.Unchanged:
		r.log.Debug("config unchanged; not reloading", logkey.File, r.path, logkey.Digest, c.Digest)
		r.report(ReloadResult{Outcome: ReloadUnchanged, Digest: c.Digest, Active: r.active(), At: r.now()})
		return
	case c.Err != nil && !c.Forced:
		r.logReadError(c.Err)
		return
	}
	r.lastErr = ""
	res := ReloadResult{Forced: c.Forced, Digest: c.Digest, At: r.now()}
	r.sd.reloading()
	l, err := r.parse(c)
	switch {
	case err != nil:
		res.Outcome, res.Err = ReloadRejected, err
		errors.As(err, &res.Diagnostics)
	case l.Unsafe != nil:
		res.Outcome, res.Err = ReloadRefused, l.Unsafe
	default:
		r.eng.Swap(l.Set)
		res.Outcome, res.Diagnostics = ReloadApplied, l.Set.Warnings()
	}
	res.Active, res.Duration = r.active(), r.now().Sub(res.At)
	r.logResult(res)
	r.sd.reloaded(statusOfReload(res))
	r.report(res)
}

// parse loads the change's bytes by the one load path. The bytes are the
// ones the watcher hashed, so what is applied is what was seen.
func (r *reloader) parse(c watch.Change) (handlersfile.Loaded, error) {
	if c.Err != nil {
		return handlersfile.Loaded{}, fmt.Errorf("read %s: %w", r.path, c.Err)
	}
	return handlersfile.Parse(r.path, c.Data, r.load)
}

// active describes the Set serving now.
func (r *reloader) active() string { return describe(r.eng.Current()) }

// logResult logs a reload once: each diagnostic at its position first, the
// verdict last.
func (r *reloader) logResult(res ReloadResult) {
	attrs := []any{logkey.File, r.path, logkey.Digest, res.Digest, logkey.Trigger, trigger(res.Forced), logkey.DurationMs, res.Duration.Milliseconds()}
	for _, d := range res.Diagnostics {
		level := slog.LevelError
		if d.Severity == engine.SeverityWarning || res.Outcome == ReloadApplied {
			level = slog.LevelWarn
		}
		r.log.Log(context.Background(), level, "config problem", logkey.Diagnostic, d.String())
	}
	switch res.Outcome {
	case ReloadApplied:
		r.log.Info("reloaded", append(attrs, logkey.Active, res.Active)...)
	case ReloadRefused:
		r.log.Error("reload refused: unsafe config permissions; keeping the active handlers", append(attrs, logkey.Err, res.Err)...)
	case ReloadRejected:
		if len(res.Diagnostics) > 0 {
			attrs = append(attrs, logkey.Problems, len(res.Diagnostics))
		} else {
			attrs = append(attrs, logkey.Err, res.Err)
		}
		r.log.Error("reload rejected; keeping the active handlers", attrs...)
	}
}

// logReadError logs an unforced read failure once per distinct message; a
// missing file is expected between a delete and a create and logged at
// Debug.
func (r *reloader) logReadError(err error) {
	if errors.Is(err, fs.ErrNotExist) {
		r.log.Debug("config missing; waiting for it to come back", logkey.File, r.path)
		return
	}
	if msg := err.Error(); msg != r.lastErr {
		r.lastErr = msg
		r.log.Warn("config unreadable; waiting for the next change", logkey.File, r.path, logkey.Err, err)
	}
}

// trigger names what started a reload, for the log.
func trigger(forced bool) string {
	if forced {
		return "request"
	}
	return "file"
}

// statusOfReload is the config part of STATUS= after a reload: what serves,
// and what the reload did.
func statusOfReload(res ReloadResult) string {
	at := res.At.Format(time.RFC3339)
	if res.Outcome == ReloadApplied {
		return res.Active + " reloaded at " + at
	}
	why := res.Err.Error()
	if len(res.Diagnostics) > 0 {
		why = fmt.Sprintf("%d problems, first %s", len(res.Diagnostics), res.Diagnostics[0].String())
	}
	return fmt.Sprintf("%s; reload %s at %s: %s", res.Active, res.Outcome, at, why)
}

// describe is the one-line description of a Set in STATUS= and the log.
func describe(s *engine.Set) string {
	if s == nil {
		return "no handlers"
	}
	return fmt.Sprintf("%d methods, config %.12s", len(s.Methods()), s.Digest())
}
