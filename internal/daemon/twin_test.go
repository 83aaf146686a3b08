package daemon

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
	"unicode/utf8"

	"github.com/methodd/methodd/engine"
	"github.com/methodd/methodd/internal/device"
)

// reportedSection decodes a patch the way a reader of the twin sees it.
type reportedSection struct {
	Methodd struct {
		Version          string      `json:"version"`
		ConfigDigest     string      `json:"configDigest"`
		Methods          []string    `json:"methods"`
		MethodsTruncated bool        `json:"methodsTruncated"` // null decodes as false
		LoadedAt         string      `json:"loadedAt"`
		LastReload       *twinReload `json:"lastReload"`
		StartedAt        string      `json:"startedAt"`
	} `json:"methodd"`
}

func decodeSection(t *testing.T, patch []byte) reportedSection {
	t.Helper()
	var r reportedSection
	if err := json.Unmarshal(patch, &r); err != nil {
		t.Fatalf("patch %s: %v", patch, err)
	}
	return r
}

// TestTwinSectionShape: the section's exact JSON, with its keys in
// design order, methods sorted, times in UTC with nanoseconds, the digest
// prefixed, lastReload null before any reload and "(devel)" for an
// unknown version.
func TestTwinSectionShape(t *testing.T) {
	cet := time.FixedZone("CET", 3600)
	f := twinFacts{
		digest:    "ab12",
		methods:   []string{"restart", "catalog", "ping"},
		loadedAt:  time.Date(2026, 1, 2, 4, 4, 5, 6, cet),
		startedAt: time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC),
	}
	want := `{"methodd":{"version":"(devel)","configDigest":"sha256:ab12","methods":["catalog","ping","restart"],` +
		`"methodsTruncated":null,"loadedAt":"2026-01-02T03:04:05.000000006Z","lastReload":null,"startedAt":"2026-01-02T03:00:00Z"}}`
	if got := string(f.patch()); got != want {
		t.Errorf("patch:\ngot  %s\nwant %s", got, want)
	}
	f.version, f.methods = "v1.2.3", nil
	f.lastReload = &twinReload{OK: false, At: "2026-01-02T03:05:00Z", Problems: []string{"h.yaml:1:1: a && b"}}
	want = `{"methodd":{"version":"v1.2.3","configDigest":"sha256:ab12","methods":[],"methodsTruncated":null,"loadedAt":"2026-01-02T03:04:05.000000006Z",` +
		`"lastReload":{"ok":false,"at":"2026-01-02T03:05:00Z","problems":["h.yaml:1:1: a && b"]},"startedAt":"2026-01-02T03:00:00Z"}}`
	if got := string(f.patch()); got != want {
		t.Errorf("patch:\ngot  %s\nwant %s", got, want)
	}
}

// TestTwinSectionTruncatesMethods: a method list that would take the patch
// past maxTwinPatchBytes is cut to the longest sorted prefix that fits,
// and methodsTruncated says so; a list that fits is whole, without the
// flag.
func TestTwinSectionTruncatesMethods(t *testing.T) {
	var names []string
	for i := range 400 {
		names = append(names, fmt.Sprintf("m%03d_%s", 399-i, strings.Repeat("x", 100)))
	}
	slices.Reverse(names[:200]) // not in order
	f := twinFacts{version: "v1", digest: strings.Repeat("0", 64), methods: names,
		lastReload: &twinReload{Problems: []string{strings.Repeat("p", maxProblemBytes)}}}
	patch := f.patch()
	if len(patch) > maxTwinPatchBytes {
		t.Fatalf("patch is %d bytes, want at most %d", len(patch), maxTwinPatchBytes)
	}
	got := decodeSection(t, patch).Methodd
	sorted := slices.Sorted(slices.Values(names))
	n := len(got.Methods)
	if !got.MethodsTruncated || n == 0 || n == len(names) {
		t.Fatalf("methodsTruncated %v with %d of %d methods, want a cut list", got.MethodsTruncated, n, len(names))
	}
	if !slices.Equal(got.Methods, sorted[:n]) {
		t.Errorf("methods are not the sorted list's first %d", n)
	}
	f.methods = sorted[:n+1]
	if one := f.patch(); len(one) <= maxTwinPatchBytes && !decodeSection(t, one).Methodd.MethodsTruncated {
		t.Errorf("%d methods fit in %d bytes, but only %d were kept", n+1, len(one), n)
	}

	f.methods = sorted[:10]
	whole := decodeSection(t, f.patch()).Methodd
	if whole.MethodsTruncated || len(whole.Methods) != 10 {
		t.Errorf("10 methods: got %d, methodsTruncated %v; want all, unflagged", len(whole.Methods), whole.MethodsTruncated)
	}
}

// TestTwinReloadProblems: lastReload says whether the reload applied, when
// it ran (UTC), and at most 3 problems of at most 512 bytes each: the
// file's diagnostics, else the lines of its error.
func TestTwinReloadProblems(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 8, time.FixedZone("X", -7200))
	diag := func(line int, msg string) engine.Diagnostic {
		return engine.Diagnostic{File: "/etc/methodd/handlers.yaml", Line: line, Col: 3, Message: msg, Severity: engine.SeverityError}
	}
	long := strings.Repeat("é", 600) // 1200 bytes, 2 per rune
	tests := []struct {
		name string
		res  ReloadResult
		want twinReload
	}{
		{"applied", ReloadResult{Outcome: ReloadApplied, At: at}, twinReload{OK: true, Problems: []string{}}},
		{"applied with a warning", ReloadResult{Outcome: ReloadApplied, At: at,
			Diagnostics: engine.Diagnostics{{File: "h.yaml", Line: 2, Col: 1, Message: "unused", Severity: engine.SeverityWarning}}},
			twinReload{OK: true, Problems: []string{"h.yaml:2:1: warning: unused"}}},
		{"rejected, five problems", ReloadResult{Outcome: ReloadRejected, At: at, Err: errors.New("ignored"),
			Diagnostics: engine.Diagnostics{diag(1, "a"), diag(2, "b"), diag(3, "c"), diag(4, "d"), diag(5, "e")}},
			twinReload{Problems: []string{"/etc/methodd/handlers.yaml:1:3: a", "/etc/methodd/handlers.yaml:2:3: b", "/etc/methodd/handlers.yaml:3:3: c"}}},
		{"rejected, long problem", ReloadResult{Outcome: ReloadRejected, At: at, Diagnostics: engine.Diagnostics{diag(9, long)}},
			twinReload{Problems: []string{"/etc/methodd/handlers.yaml:9:3: " + long[:maxProblemBytes-len("/etc/methodd/handlers.yaml:9:3: ")-len("…")-1] + "…"}}},
		{"rejected, unreadable", ReloadResult{Outcome: ReloadRejected, At: at, Err: errors.New("read h.yaml: permission denied")},
			twinReload{Problems: []string{"read h.yaml: permission denied"}}},
		{"refused, two paths", ReloadResult{Outcome: ReloadRefused, At: at, Err: errors.Join(errors.New("/etc: writable by others"), errors.New("/etc/h.yaml: owned by uid 7"))},
			twinReload{Problems: []string{"/etc: writable by others", "/etc/h.yaml: owned by uid 7"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := reloadOf(tc.res)
			tc.want.At = "2026-03-04T07:06:07.000000008Z"
			if got.OK != tc.want.OK || got.At != tc.want.At || !slices.Equal(got.Problems, tc.want.Problems) || got.Problems == nil {
				t.Errorf("got %+v\nwant %+v", *got, tc.want)
			}
			for _, p := range got.Problems {
				if len(p) > maxProblemBytes || !utf8.ValidString(p) {
					t.Errorf("problem of %d bytes (valid UTF-8: %v), want at most %d", len(p), utf8.ValidString(p), maxProblemBytes)
				}
			}
		})
	}
}

// targetCall is one ReportProperties call on fakeTarget, answered by the
// test through reply.
type targetCall struct {
	patch []byte
	at    time.Time
	reply chan TwinReport // Version and Err are used
}

// fakeTarget is an in-memory session: each call waits for the test's
// answer (or its ctx).
type fakeTarget struct{ calls chan targetCall }

func (f *fakeTarget) ReportProperties(ctx context.Context, patch []byte) (int64, error) {
	c := targetCall{patch: patch, at: time.Now(), reply: make(chan TwinReport, 1)}
	f.calls <- c
	select {
	case r := <-c.reply:
		return r.Version, r.Err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// levelCounter counts log records by level.
type levelCounter struct {
	mu sync.Mutex
	n  map[slog.Level]int
}

func (l *levelCounter) Enabled(context.Context, slog.Level) bool { return true }
func (l *levelCounter) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n[r.Level]++
	return nil
}
func (l *levelCounter) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *levelCounter) WithGroup(string) slog.Handler      { return l }
func (l *levelCounter) take(level slog.Level) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.n[level]
	l.n[level] = 0
	return n
}

// reporterHarness runs a twinReporter on a fakeTarget in the caller's
// synctest bubble.
type reporterHarness struct {
	t       *testing.T
	r       *twinReporter
	target  *fakeTarget
	reports chan TwinReport
	logs    *levelCounter
	stop    func()
}

const harnessConfig = "version: 1\nmethods:\n  restart: {reply: {payload: '1'}}\n"

func startReporter(t *testing.T) *reporterHarness {
	t.Helper()
	set, err := engine.Parse("h.yaml", []byte(harnessConfig), engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h := &reporterHarness{t: t, target: &fakeTarget{calls: make(chan targetCall, 16)},
		reports: make(chan TwinReport, 64), logs: &levelCounter{n: map[slog.Level]int{}}}
	cfg := Config{Version: "v9", Now: time.Now, OnTwinReport: func(r TwinReport) { h.reports <- r }}
	h.r = newTwinReporter(cfg, engine.New(set), slog.New(h.logs))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		h.r.run(ctx, h.target)
		close(done)
	}()
	h.stop = func() {
		cancel()
		<-done
	}
	return h
}

// call returns the next ReportProperties call; inside the bubble, "within
// 1h" only bounds a test that would otherwise block for good.
func (h *reporterHarness) call() targetCall {
	h.t.Helper()
	select {
	case c := <-h.target.calls:
		return c
	case <-time.After(time.Hour):
		h.t.Fatal("no report within 1h")
		return targetCall{}
	}
}

// noCall fails if a report is made within d.
func (h *reporterHarness) noCall(d time.Duration) {
	h.t.Helper()
	time.Sleep(d) // moves the bubble's clock; nothing runs in between
	synctest.Wait()
	select {
	case c := <-h.target.calls:
		h.t.Fatalf("unexpected report %s", c.patch)
	default:
	}
}

// answer replies to c and returns the TwinReport the hook got for it.
func (h *reporterHarness) answer(c targetCall, version int64, err error) TwinReport {
	h.t.Helper()
	c.reply <- TwinReport{Version: version, Err: err}
	select {
	case r := <-h.reports:
		if string(r.Patch) != string(c.patch) || r.Version != version || !errors.Is(r.Err, err) {
			h.t.Errorf("OnTwinReport got %s %d %v, want %s %d %v", r.Patch, r.Version, r.Err, c.patch, version, err)
		}
		return r
	case <-time.After(time.Hour):
		h.t.Fatal("no OnTwinReport after an attempt")
		return TwinReport{}
	}
}

// TestTwinReportContent: a report carries the serving file's digest and
// methods, the version, the start time and the last reload.
func TestTwinReportContent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := startReporter(t)
		started := time.Now()
		h.r.onState(device.State{Kind: device.Connected, Conn: 1})
		c := h.call()
		sum := sha256.Sum256([]byte(harnessConfig))
		got := decodeSection(t, c.patch).Methodd
		if got.ConfigDigest != "sha256:"+hex.EncodeToString(sum[:]) {
			t.Errorf("configDigest %s, want the SHA-256 of the file", got.ConfigDigest)
		}
		if !slices.Equal(got.Methods, []string{"catalog", "ping", "restart"}) || got.Version != "v9" || got.LastReload != nil ||
			got.StartedAt != stamp(started) || got.LoadedAt == "" {
			t.Errorf("section %+v", got)
		}
		h.answer(c, 5, nil)
		reloadAt := time.Now().Add(time.Minute)
		h.r.onReload(ReloadResult{Outcome: ReloadRejected, At: reloadAt, Err: errors.New("read: gone")})
		c = h.call()
		if lr := decodeSection(t, c.patch).Methodd.LastReload; lr == nil || lr.OK || lr.At != stamp(reloadAt) ||
			!slices.Equal(lr.Problems, []string{"read: gone"}) {
			t.Errorf("lastReload %+v, want the rejected reload", lr)
		}
		h.answer(c, 6, nil)
		h.stop()
	})
}

// TestTwinReportTriggers: a connection reports, a renewal does not; a
// reload that applied, was rejected or refused reports, an unchanged one
// does not; triggers during a report make exactly one more, with the
// latest state; a report that finds the session disconnected or refusing
// twins waits for the next trigger.
func TestTwinReportTriggers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := startReporter(t)
		h.r.onState(device.State{Kind: device.Connecting, Conn: 1})
		h.r.onState(device.State{Kind: device.Connected, Conn: 1, Renewal: true})
		h.r.onState(device.State{Kind: device.Disconnected, Conn: 1})
		h.r.onReload(ReloadResult{Outcome: ReloadUnchanged, At: time.Now()})
		h.noCall(time.Hour)

		for _, o := range []ReloadOutcome{ReloadApplied, ReloadRejected, ReloadRefused} {
			h.r.onReload(ReloadResult{Outcome: o, At: time.Now(), Err: errors.New("e")})
			c := h.call()
			if lr := decodeSection(t, c.patch).Methodd.LastReload; lr == nil || lr.OK != (o == ReloadApplied) {
				t.Errorf("%v: lastReload %+v", o, lr)
			}
			h.answer(c, 1, nil)
			h.noCall(time.Hour)
		}

		// Three triggers while a report is in flight: one more report.
		h.r.onState(device.State{Kind: device.Connected, Conn: 2})
		c := h.call()
		h.r.onReload(ReloadResult{Outcome: ReloadApplied, At: time.Now()})
		h.r.onState(device.State{Kind: device.Connected, Conn: 3})
		last := time.Now().Add(time.Second)
		h.r.onReload(ReloadResult{Outcome: ReloadRefused, At: last, Err: errors.New("unsafe")})
		h.answer(c, 2, nil)
		c = h.call()
		if lr := decodeSection(t, c.patch).Methodd.LastReload; lr == nil || lr.At != stamp(last) {
			t.Errorf("coalesced report has lastReload %+v, want the latest reload's", lr)
		}
		h.answer(c, 3, nil)
		h.noCall(time.Hour)

		// Not connected, or twins refused: no retry until the next trigger.
		for _, err := range []error{device.ErrNotConnected, device.ErrTwinRefused} {
			h.r.onState(device.State{Kind: device.Connected, Conn: 4})
			h.answer(h.call(), 0, err)
			h.noCall(time.Hour)
		}
		h.r.onState(device.State{Kind: device.Connected, Conn: 5})
		h.answer(h.call(), 4, nil)
		if n := h.logs.take(slog.LevelWarn); n != 0 {
			t.Errorf("%d warnings, want none", n)
		}
		h.stop()
	})
}

// TestTwinReportRetriesWithBackoff: a report that fails while connected
// is retried 2 s later, then 4 s, doubling up to 5 min, warning once;
// the first success ends it. A trigger during the back-off retries at
// once.
func TestTwinReportRetriesWithBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := startReporter(t)
		h.r.onState(device.State{Kind: device.Connected, Conn: 1})
		c := h.call()
		failure := &device.TwinStatusError{Status: 503}
		want := []time.Duration{2, 4, 8, 16, 32, 64, 128, 256, 300, 300}
		for i, d := range want {
			d *= time.Second
			prev := c.at
			h.answer(c, 0, failure)
			c = h.call()
			if got := c.at.Sub(prev); got != d {
				t.Errorf("retry %d came %v after the failure, want exactly %v", i+1, got, d)
			}
		}
		if n := h.logs.take(slog.LevelWarn); n != 1 {
			t.Errorf("%d warnings for one failing report, want 1", n)
		}
		h.answer(c, 9, nil)
		if n := h.logs.take(slog.LevelInfo); n != 1 {
			t.Errorf("%d info lines for the success, want 1", n)
		}
		h.noCall(time.Hour)

		// A new connection during the back-off: retried at once.
		h.r.onState(device.State{Kind: device.Connected, Conn: 2})
		h.answer(h.call(), 0, device.ErrConnectionLost)
		time.Sleep(time.Second)
		h.r.onState(device.State{Kind: device.Connected, Conn: 3})
		triggered := time.Now()
		c = h.call()
		if c.at != triggered {
			t.Errorf("retry came %v after the trigger, want at once", c.at.Sub(triggered))
		}
		h.answer(c, 10, nil)
		h.noCall(time.Hour)
		h.stop()
	})
}

// TestTwinReportAttemptBoundedAndStops: an attempt the session never
// answers ends at twinAttemptTimeout and is retried; cancelling the
// context ends the reporter, even in the middle of an attempt.
func TestTwinReportAttemptBoundedAndStops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := startReporter(t)
		h.r.onState(device.State{Kind: device.Connected, Conn: 1})
		first := h.call() // never answered
		r := <-h.reports
		if !errors.Is(r.Err, context.DeadlineExceeded) {
			t.Errorf("unanswered attempt: got %v, want context.DeadlineExceeded", r.Err)
		}
		second := h.call()
		if d := second.at.Sub(first.at); d != twinAttemptTimeout+twinRetryFloor {
			t.Errorf("retry %v after the first attempt, want %v", d, twinAttemptTimeout+twinRetryFloor)
		}
		start := time.Now()
		h.stop() // returns only once run has
		if d := time.Since(start); d != 0 {
			t.Errorf("stopping took %v, want at once", d)
		}
	})
}

// TestTwinReporterOfFollowsConnectionTwin: connection.twin: false means no
// reporter and OnReload left as it was; true (the default) means a
// reporter that sees each reload before the caller's OnReload does.
func TestTwinReporterOfFollowsConnectionTwin(t *testing.T) {
	load := func(conn string) *engine.Set {
		t.Helper()
		s, err := engine.Parse("h.yaml", []byte("version: 1\n"+conn), engine.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	log := slog.New(slog.DiscardHandler)

	off := Config{Now: time.Now}
	off.Loaded.Set = load("connection: {twin: false}\n")
	if r := twinReporterOf(&off, engine.New(off.Loaded.Set), log); r != nil || off.OnReload != nil {
		t.Errorf("twin: false: got reporter %v and OnReload set %v, want neither", r != nil, off.OnReload != nil)
	}

	var seen *twinReload
	var r *twinReporter
	on := Config{Now: time.Now, OnReload: func(ReloadResult) {
		r.mu.Lock()
		seen = r.lastReload
		r.mu.Unlock()
	}}
	on.Loaded.Set = load("")
	r = twinReporterOf(&on, engine.New(on.Loaded.Set), log)
	if r == nil {
		t.Fatal("default: no reporter")
	}
	on.OnReload(ReloadResult{Outcome: ReloadApplied, At: time.Now()})
	if seen == nil || !seen.OK {
		t.Errorf("the caller's OnReload saw lastReload %+v, want the applied reload recorded first", seen)
	}
	select {
	case <-r.kick:
	default:
		t.Error("a reload through OnReload asked for no report")
	}
}
