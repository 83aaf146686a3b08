package daemon

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/methodd/methodd/engine"
	"github.com/methodd/methodd/internal/device"
	"github.com/methodd/methodd/internal/logkey"
)

// Bounds of the methodd section (design §5; fleet reference §1.7: the
// reported properties hold at most 32 KB, a string at most 4 KB).
const (
	// maxTwinPatchBytes bounds the JSON of the whole patch,
	// {"methodd":{…}}: half of the hub's 32 KB for reported properties,
	// leaving the other half to whatever else reports on this device. The
	// hub counts key and value lengths, never more than the JSON bytes, so
	// the bound holds by its count too. Only the method list can make the
	// section this large: it is cut to fit, and methodsTruncated set.
	maxTwinPatchBytes = 16 * 1024
	// maxTwinProblems is how many problems of a reload are reported.
	maxTwinProblems = 3
	// maxProblemBytes bounds one reported problem, "…" included.
	maxProblemBytes = 512
	// maxVersionBytes bounds the reported version string.
	maxVersionBytes = 128
)

// Timing of reports.
const (
	// twinRetryFloor and twinRetryMax bound the back-off between attempts
	// of a report that failed while connected: 2 s, doubling, at most 5 min.
	twinRetryFloor = 2 * time.Second
	twinRetryMax   = 5 * time.Minute
	// twinAttemptTimeout bounds one attempt: the twin subscription on a
	// connection's first report, the publish and the hub's answer.
	twinAttemptTimeout = device.DefaultDialTimeout
)

// develVersion is reported when Config.Version is empty, as Go's build
// information says of a binary built outside a module version.
const develVersion = "(devel)"

// TwinReport is one attempt to report the daemon's state in the device
// twin (Config.OnTwinReport).
type TwinReport struct {
	// Patch is the reported-properties patch sent: {"methodd":{…}}.
	Patch []byte
	// Version is the reported $version the hub answered with; 0 on error.
	Version int64
	// Err is why the attempt failed: device.ErrNotConnected (the report
	// waits for the next connection), device.ErrTwinRefused,
	// device.ErrConnectionLost, a *device.TwinStatusError, or a context
	// error. nil on success.
	Err error
}

// propertyReporter is what the reporter needs of the device session.
type propertyReporter interface {
	ReportProperties(ctx context.Context, patch []byte) (int64, error)
}

// twinSection is the methodd section of the reported properties.
type twinSection struct {
	Version          string      `json:"version"`
	ConfigDigest     string      `json:"configDigest"`
	Methods          []string    `json:"methods"`
	MethodsTruncated *bool       `json:"methodsTruncated"` // true, or null: deletes a stale true (patches merge)
	LoadedAt         string      `json:"loadedAt"`
	LastReload       *twinReload `json:"lastReload"` // null before any reload: deletes the last run's
	StartedAt        string      `json:"startedAt"`
}

// twinReload is the outcome of the last reload that was not a no-op.
type twinReload struct {
	OK       bool     `json:"ok"`
	At       string   `json:"at"`
	Problems []string `json:"problems"`
}

// twinFacts are what a report says, gathered when it is made.
type twinFacts struct {
	version    string
	digest     string // hex SHA-256 of the serving file
	methods    []string
	loadedAt   time.Time
	startedAt  time.Time
	lastReload *twinReload
}

// patch renders f as the reported-properties patch, within
// maxTwinPatchBytes: methods sorted, and cut to the longest prefix that
// fits when they do not all fit.
func (f twinFacts) patch() []byte {
	methods := slices.Sorted(slices.Values(f.methods))
	if methods == nil {
		methods = []string{}
	}
	sec := twinSection{
		Version:      truncateUTF8(cmp.Or(f.version, develVersion), maxVersionBytes),
		ConfigDigest: "sha256:" + f.digest,
		Methods:      methods,
		LoadedAt:     stamp(f.loadedAt),
		LastReload:   f.lastReload,
		StartedAt:    stamp(f.startedAt),
	}
	b := marshalPatch(sec)
	if len(b) <= maxTwinPatchBytes {
		return b
	}
	truncated := true
	sec.MethodsTruncated = &truncated
	tooMany := sort.Search(len(methods)+1, func(n int) bool {
		sec.Methods = methods[:n]
		return len(marshalPatch(sec)) > maxTwinPatchBytes
	})
	sec.Methods = methods[:max(tooMany-1, 0)]
	return marshalPatch(sec)
}

// marshalPatch is sec under its key, without HTML escaping: problems quote
// expressions, and "a && b" reads better than "a \u0026\u0026 b".
func marshalPatch(sec twinSection) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(struct {
		Methodd twinSection `json:"methodd"`
	}{sec}) // strings, bools and slices of them: never fails
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// reloadOf summarises a reload that applied, rejected or refused the file.
// Its problems are the file's diagnostics (warnings of an applied file),
// or the lines of its error when it has none (unreadable file, unsafe
// permissions): at most maxTwinProblems, each cut to maxProblemBytes.
func reloadOf(res ReloadResult) *twinReload {
	var all []string
	for _, d := range res.Diagnostics {
		all = append(all, d.String())
	}
	if len(all) == 0 && res.Err != nil {
		for line := range strings.SplitSeq(res.Err.Error(), "\n") {
			if line != "" {
				all = append(all, line)
			}
		}
	}
	problems := make([]string, 0, maxTwinProblems)
	for _, p := range all[:min(len(all), maxTwinProblems)] {
		problems = append(problems, truncateUTF8(p, maxProblemBytes))
	}
	return &twinReload{OK: res.Outcome == ReloadApplied, At: stamp(res.At), Problems: problems}
}

// truncateUTF8 cuts s to at most n bytes, ending in "…" when cut, never
// inside a UTF-8 sequence.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const ellipsis = "…"
	cut := n - len(ellipsis)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ellipsis
}

// stamp is t as reported: RFC 3339 with nanoseconds, in UTC.
func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// twinReporter reports the daemon's state in the device twin (design §5):
// at every connection that is not a planned SAS renewal, and after every
// reload that applied, rejected or refused the file. Triggers coalesce: one
// report carries the latest state. A report that fails while connected is
// retried with back-off; one that finds the session disconnected waits for
// the next connection. It runs in its own goroutine and never blocks the
// session, the reloader or READY: its hooks only record and signal.
type twinReporter struct {
	log       *slog.Logger
	eng       *engine.Engine
	version   string
	startedAt time.Time
	onReport  func(TwinReport)
	kick      chan struct{} // buffered 1: a report is due

	mu         sync.Mutex
	lastReload *twinReload // nil before any reload
}

// newTwinReporter returns the reporter of the daemon serving eng.
func newTwinReporter(cfg Config, eng *engine.Engine, log *slog.Logger) *twinReporter {
	onReport := cfg.OnTwinReport
	if onReport == nil {
		onReport = func(TwinReport) {}
	}
	return &twinReporter{log: log.With(logkey.Component, "twin"), eng: eng, version: cfg.Version,
		startedAt: cfg.Now(), onReport: onReport, kick: make(chan struct{}, 1)}
}

// twinReporterOf returns the reporter of the daemon serving eng, with
// cfg.OnReload chained behind it (the reporter sees a reload first), or
// nil when the start-up file sets connection.twin: false (read at
// start-up, like the rest of connection): the twin is then never touched.
func twinReporterOf(cfg *Config, eng *engine.Engine, log *slog.Logger) *twinReporter {
	if !cfg.Loaded.Set.Connection().Twin {
		log.Info("device twin reporting is off (connection.twin: false)")
		return nil
	}
	r := newTwinReporter(*cfg, eng, log)
	next := cfg.OnReload
	cfg.OnReload = func(res ReloadResult) {
		r.onReload(res)
		if next != nil {
			next(res)
		}
	}
	return r
}

// onState takes a session state change: a connection that is not a
// renewal asks for a report.
func (r *twinReporter) onState(st device.State) {
	if st.Kind == device.Connected && !st.Renewal {
		r.trigger()
	}
}

// onReload takes a reload result: one that applied, rejected or refused
// the file is recorded and asks for a report.
func (r *twinReporter) onReload(res ReloadResult) {
	switch res.Outcome {
	case ReloadApplied, ReloadRejected, ReloadRefused:
		lr := reloadOf(res)
		r.mu.Lock()
		r.lastReload = lr
		r.mu.Unlock()
		r.trigger()
	}
}

// trigger asks for a report without blocking; one already asked for
// carries this one too.
func (r *twinReporter) trigger() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// facts gathers the state to report now.
func (r *twinReporter) facts() twinFacts {
	f := twinFacts{version: r.version, startedAt: r.startedAt}
	if s := r.eng.Current(); s != nil {
		f.digest, f.methods, f.loadedAt = s.Digest(), s.Methods(), s.LoadedAt()
	}
	r.mu.Lock()
	f.lastReload = r.lastReload
	r.mu.Unlock()
	return f
}

// run makes the reports asked for, on target, until ctx is done.
func (r *twinReporter) run(ctx context.Context, target propertyReporter) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.kick:
			r.report(ctx, target)
		}
	}
}

// report sends the current state until the hub accepts it, the session
// turns out not to be connected or to refuse twins, or ctx ends. Each
// attempt sends the state as it is then, and is passed to onReport. The
// first failure is logged at Warn, the retries at Debug; a trigger during
// the back-off retries at once.
func (r *twinReporter) report(ctx context.Context, target propertyReporter) {
	delay, warned := twinRetryFloor, false
	for {
		f := r.facts()
		patch := f.patch()
		actx, cancel := context.WithTimeout(ctx, twinAttemptTimeout)
		version, err := target.ReportProperties(actx, patch)
		cancel()
		r.onReport(TwinReport{Patch: patch, Version: version, Err: err})
		switch {
		case err == nil:
			r.log.Info("reported to the device twin", logkey.Digest, f.digest, logkey.Bytes, len(patch))
			return
		case ctx.Err() != nil:
			return
		case errors.Is(err, device.ErrNotConnected), errors.Is(err, device.ErrTwinRefused):
			// The session logs its state and the refusal; the next
			// connection asks for a report again.
			r.log.Debug("twin report waits for the next connection", logkey.Err, err)
			return
		case !warned:
			r.log.Warn("twin report failed; retrying", logkey.Err, err, logkey.RetryInMs, delay.Milliseconds())
			warned = true
		default:
			r.log.Debug("twin report failed again; retrying", logkey.Err, err, logkey.RetryInMs, delay.Milliseconds())
		}
		if !r.backOff(ctx, delay) {
			return
		}
		delay = min(delay*2, twinRetryMax)
	}
}

// backOff waits d, or less when a report is asked for meanwhile; it
// reports false when ctx ended first.
func (r *twinReporter) backOff(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
	case <-r.kick:
	}
	return true
}
