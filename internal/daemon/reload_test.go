package daemon

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/methodd/methodd/engine"
	"github.com/methodd/methodd/internal/confperm"
	"github.com/methodd/methodd/internal/device"
	"github.com/methodd/methodd/internal/handlersfile"
	"github.com/methodd/methodd/internal/sdnotify"
	"github.com/methodd/methodd/internal/testkit"
)

// reloadWait bounds every wait in these tests. Generous: the box may be
// loaded. The latency is measured (logged, and by BenchmarkReloadLatency),
// not asserted.
const reloadWait = 10 * time.Second

// Two valid configs, told apart by the reply of "hello", and an invalid one
// (an expr syntax error at line 5, column 32).
const (
	configA = `version: 1
defaults: {concurrency: 1000}
methods:
  hello:
    reply: {status: '200', payload: '{"config": "A"}'}
`
	configB = `version: 1
defaults: {concurrency: 1000}
methods:
  hello:
    reply: {status: '201', payload: '{"config": "B"}'}
  extra:
    reply: {payload: '{"only": "in B"}'}
`
	configBad = `version: 1
defaults: {concurrency: 1000}
methods:
  hello:
    reply: {status: '200', payload: '{"config": "A",, "broken": true}'}
`
)

// wantReply maps each valid config to the reply "hello" gets from it.
var wantReply = map[string]string{configA: `200 {"config":"A"}`, configB: `201 {"config":"B"}`}

// reloadHarness is a running reloader on a config in a temporary directory,
// with a real notify socket standing in for systemd.
type reloadHarness struct {
	t       testing.TB
	path    string
	eng     *engine.Engine
	results chan ReloadResult // every reload outcome, in order
	notes   chan string       // sd_notify datagrams, read as they arrive
	reload  chan struct{}     // Config.Reload
	rid     atomic.Int64      // the last request id call used (calls run in parallel)
}

// startReloader writes initial to path (created by the caller's layout, or
// dir/handlers.yaml when path is ""), loads it as `methodd run` would, and
// runs a reloader on it until the test ends. It returns once the
// reloader's start-up check has found the file unchanged.
func startReloader(t testing.TB, path, initial string) *reloadHarness {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "handlers.yaml")
		writeConfig(t, path, initial)
	}
	h := &reloadHarness{t: t, path: path, results: make(chan ReloadResult, 1000), reload: make(chan struct{}, 1)}
	ns := testkit.ListenNotify(t)
	h.notes = ns.Msgs
	opts := handlersfile.Options{DaemonUID: os.Geteuid()}
	l, err := handlersfile.Load(path, opts)
	if err != nil || l.Unsafe != nil {
		t.Fatalf("initial config: %v %v", err, l.Unsafe)
	}
	h.eng = engine.New(l.Set)
	log := slog.New(slog.DiscardHandler)
	sd := newSystemd(sdnotify.New(ns.Getenv()), log, "gw", describe(l.Set), time.Now, func() {})
	sd.onState(device.State{Kind: device.Connected})
	if n := h.note(); !strings.HasPrefix(n, "READY=1\nSTATUS=connected as gw; ") {
		t.Fatalf("first notification %q, want READY=1 once connected", n)
	}
	cfg := Config{Path: path, Load: opts, Now: time.Now, OnReload: func(r ReloadResult) { h.results <- r }}
	rl, err := newReloader(cfg, l.Data, h.eng, sd, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rl.run(ctx, h.reload) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("reloader run: %v", err)
		}
	})
	if r := h.next(); r.Outcome != ReloadUnchanged {
		t.Fatalf("start-up check: %v, want unchanged", r.Outcome)
	}
	return h
}

func writeConfig(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// next waits for the next reload result of any outcome.
func (h *reloadHarness) next() ReloadResult {
	h.t.Helper()
	select {
	case r := <-h.results:
		return r
	case <-time.After(reloadWait):
		h.t.Fatalf("no reload result within %v", reloadWait)
		return ReloadResult{}
	}
}

// outcome waits for the next reload that did something (skipping checks
// that found the file unchanged, as a burst of events may cause).
func (h *reloadHarness) outcome() ReloadResult {
	h.t.Helper()
	for {
		if r := h.next(); r.Outcome != ReloadUnchanged {
			return r
		}
	}
}

// note reads the next sd_notify datagram.
func (h *reloadHarness) note() string {
	h.t.Helper()
	select {
	case n := <-h.notes:
		return n
	case <-time.After(reloadWait):
		h.t.Fatalf("no sd_notify message within %v", reloadWait)
		return ""
	}
}

// expectNotes checks the RELOADING=1 … READY=1 pair of one reload, and that
// the STATUS line contains status.
func (h *reloadHarness) expectNotes(status string) {
	h.t.Helper()
	if got := h.note(); !regexp.MustCompile(`^RELOADING=1\nMONOTONIC_USEC=[1-9][0-9]*$`).MatchString(got) {
		h.t.Fatalf("first notification %q, want RELOADING=1 and MONOTONIC_USEC", got)
	}
	got := h.note()
	if !strings.HasPrefix(got, "READY=1\nSTATUS=connected as gw; ") || !strings.Contains(got, status) || strings.Count(got, "\n") != 1 {
		h.t.Fatalf("second notification %q, want READY=1 and a one-line STATUS containing %q", got, status)
	}
}

// call asks "hello" and returns "STATUS PAYLOAD".
func (h *reloadHarness) call() string {
	rid := h.rid.Add(1) // a fresh request id: the engine answers a repeated one from its memory
	rep := h.eng.Call(context.Background(), engine.Request{Method: "hello", RequestID: strconv.FormatInt(rid, 10), DeviceID: "dev"})
	return fmt.Sprintf("%d %s", rep.Status, strings.Join(strings.Fields(string(rep.Payload)), ""))
}

// expectServing checks that "hello" is answered by config.
func (h *reloadHarness) expectServing(config string) {
	h.t.Helper()
	if got := h.call(); got != wantReply[config] {
		h.t.Fatalf("hello replied %s, want %s", got, wantReply[config])
	}
}

func TestReloadEditStyles(t *testing.T) {
	styles := []struct {
		name string
		// setup prepares the layout holding configA and returns the config
		// path and a function publishing new content the style's way.
		setup func(t *testing.T) (string, func(string))
	}{
		{"write in place", func(t *testing.T) (string, func(string)) {
			p := filepath.Join(t.TempDir(), "handlers.yaml")
			writeConfig(t, p, configA)
			return p, func(c string) { writeConfig(t, p, c) }
		}},
		{"mv over", func(t *testing.T) (string, func(string)) {
			p := filepath.Join(t.TempDir(), "handlers.yaml")
			writeConfig(t, p, configA)
			return p, func(c string) { renameInto(t, p, c) }
		}},
		{"vim rename dance", func(t *testing.T) (string, func(string)) {
			p := filepath.Join(t.TempDir(), "handlers.yaml")
			writeConfig(t, p, configA)
			return p, func(c string) {
				writeConfig(t, filepath.Join(filepath.Dir(p), "4913"), "")
				os.Remove(filepath.Join(filepath.Dir(p), "4913"))
				if err := os.Rename(p, p+"~"); err != nil {
					t.Fatal(err)
				}
				writeConfig(t, p, c)
				os.Remove(p + "~")
			}
		}},
		{"git checkout", gitLayout},
		{"configmap ..data swap", configMapLayout},
	}
	for _, st := range styles {
		t.Run(st.name, func(t *testing.T) {
			path, publish := st.setup(t)
			h := startReloader(t, path, configA)
			h.expectServing(configA)
			for _, c := range []string{configB, configA, configB} {
				start := time.Now()
				publish(c)
				if r := h.outcome(); r.Outcome != ReloadApplied || r.Forced {
					t.Fatalf("outcome %v (forced %v, err %v), want applied by the file change", r.Outcome, r.Forced, r.Err)
				}
				h.expectServing(c)
				t.Logf("applied in %v", time.Since(start).Round(time.Millisecond))
				h.expectNotes("reloaded at")
			}
		})
	}
}

// gitLayout makes a repository whose main branch has configA and whose
// branch "b" has configB; publishing checks out the branch holding it.
func gitLayout(t *testing.T) (string, func(string)) {
	repo := t.TempDir()
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	p := filepath.Join(repo, "handlers.yaml")
	git("init", "-q", "-b", "main")
	writeConfig(t, p, configB)
	git("add", ".")
	git("commit", "-q", "-m", "B")
	git("branch", "b")
	writeConfig(t, p, configA)
	git("commit", "-q", "-am", "A")
	return p, func(c string) {
		if c == configA {
			git("checkout", "-q", "main")
		} else {
			git("checkout", "-q", "b")
		}
	}
}

// configMapLayout lays the config out as kubelet does for a ConfigMap
// volume and publishes with its symlink swap.
func configMapLayout(t *testing.T) (string, func(string)) {
	dir := t.TempDir()
	publish := testkit.ConfigMap(t, dir, configA)
	return filepath.Join(dir, "handlers.yaml"), publish
}

func TestReloadRejectsInvalidAndKeepsServing(t *testing.T) {
	h := startReloader(t, "", configA)

	writeConfig(t, h.path, configBad)
	r := h.outcome()
	if r.Outcome != ReloadRejected || len(r.Diagnostics) == 0 {
		t.Fatalf("outcome %v with %d diagnostics (err %v), want rejected with diagnostics", r.Outcome, len(r.Diagnostics), r.Err)
	}
	if d := r.Diagnostics[0]; d.File != h.path || d.Line != 5 || d.Path != "methods.hello.reply.payload" || d.Severity != engine.SeverityError {
		t.Fatalf("first diagnostic %+v, want an error at %s:5 on methods.hello.reply.payload", d, h.path)
	}
	if r.Active != describe(h.eng.Current()) || !strings.HasPrefix(r.Active, "3 methods") {
		t.Fatalf("active after a rejection %q, want the old set's %q", r.Active, describe(h.eng.Current()))
	}
	h.expectServing(configA)
	h.expectNotes("reload rejected at")

	writeConfig(t, h.path, configB)
	if r := h.outcome(); r.Outcome != ReloadApplied || !strings.HasPrefix(r.Active, "4 methods") {
		t.Fatalf("outcome %v, active %q: want applied with B's 4 methods", r.Outcome, r.Active)
	}
	h.expectServing(configB)
	h.expectNotes("reloaded at")
}

func TestReloadUnderLoad(t *testing.T) {
	h := startReloader(t, "", configA)
	const rewrites, callsPerRewrite, workers = 50, 20, 16

	tokens := make(chan struct{}, rewrites*callsPerRewrite)
	var replies, wrong atomic.Int64
	var firstWrong atomic.Value
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range tokens {
				got := h.call()
				replies.Add(1)
				if got != wantReply[configA] && got != wantReply[configB] {
					wrong.Add(1)
					firstWrong.CompareAndSwap(nil, got)
				}
			}
		})
	}
	valid, rejected := 0, 0
	for i := range rewrites {
		content := configBad
		if i%2 == 0 {
			content = []string{configB, configA}[i/2%2]
		}
		if i%4 == 0 {
			renameInto(t, h.path, content)
		} else {
			writeConfig(t, h.path, content)
		}
		for range callsPerRewrite { // these calls race the reload of this rewrite
			tokens <- struct{}{}
		}
		switch r := h.outcome(); r.Outcome {
		case ReloadApplied:
			valid++
		case ReloadRejected:
			rejected++
		default:
			t.Fatalf("rewrite %d: outcome %v (%v)", i, r.Outcome, r.Err)
		}
	}
	close(tokens)
	wg.Wait()
	if n := replies.Load(); n != rewrites*callsPerRewrite {
		t.Fatalf("%d replies, want %d (one per call)", n, rewrites*callsPerRewrite)
	}
	if n := wrong.Load(); n != 0 {
		t.Fatalf("%d calls got a reply from neither valid config, first: %v", n, firstWrong.Load())
	}
	if valid != rewrites/2 || rejected != rewrites/2 {
		t.Fatalf("%d reloaded, %d rejected; want %d each", valid, rejected, rewrites/2)
	}
}

func TestReloadRefusesUnsafePermissions(t *testing.T) {
	h := startReloader(t, "", configA)

	if err := os.Chmod(h.path, 0o664); err != nil {
		t.Fatal(err)
	}
	writeConfig(t, h.path, configB)
	r := h.outcome()
	if r.Outcome != ReloadRefused || !errors.Is(r.Err, confperm.ErrUnsafe) || !strings.Contains(r.Err.Error(), "chmod go-w "+h.path) {
		t.Fatalf("outcome %v (%v), want refused with confperm.ErrUnsafe naming the fix", r.Outcome, r.Err)
	}
	h.expectServing(configA)
	h.expectNotes("reload refused at")

	// Fixing the mode changes no bytes: the operator asks for a reload
	// (SIGHUP, a request on Config.Reload).
	if err := os.Chmod(h.path, 0o644); err != nil {
		t.Fatal(err)
	}
	h.reload <- struct{}{}
	if r := h.outcome(); r.Outcome != ReloadApplied || !r.Forced {
		t.Fatalf("outcome %v (forced %v, %v), want applied by the request", r.Outcome, r.Forced, r.Err)
	}
	h.expectServing(configB)
	h.expectNotes("reloaded at")
}

// TestReloadRequestAppliesIdenticalBytes: a request reloads even when the
// file is unchanged (what SIGHUP promises), and a request for a file that
// cannot be read is rejected with the read error.
func TestReloadRequestAppliesIdenticalBytes(t *testing.T) {
	h := startReloader(t, "", configA)
	digest := fmt.Sprintf("%x", sha256.Sum256([]byte(configA)))
	h.reload <- struct{}{}
	if r := h.outcome(); r.Outcome != ReloadApplied || !r.Forced || r.Digest != digest {
		t.Fatalf("outcome %v (forced %v, digest %s), want a forced reload of digest %s", r.Outcome, r.Forced, r.Digest, digest)
	}
	h.expectNotes("reloaded at")
	h.expectServing(configA)

	if err := os.Remove(h.path); err != nil {
		t.Fatal(err)
	}
	h.reload <- struct{}{}
	if r := h.outcome(); r.Outcome != ReloadRejected || !errors.Is(r.Err, fs.ErrNotExist) || !r.Forced {
		t.Fatalf("outcome %v (%v), want rejected with fs.ErrNotExist", r.Outcome, r.Err)
	}
	h.expectNotes("reload rejected at")
	h.expectServing(configA)
}

// BenchmarkReloadLatency measures, per reload, the time from the rename of
// a new config into place to the first call answered by it (issued as soon
// as the reload reports), and reports p50/p99. -benchtime=50x for the
// issue's 50 reloads.
func BenchmarkReloadLatency(b *testing.B) {
	h := startReloader(b, "", configA)
	var lat []time.Duration
	for i := 0; b.Loop(); i++ {
		c := []string{configB, configA}[i%2]
		start := time.Now()
		renameInto(b, h.path, c)
		if r := h.outcome(); r.Outcome != ReloadApplied {
			b.Fatalf("outcome %v (%v)", r.Outcome, r.Err)
		}
		if got := h.call(); got != wantReply[c] {
			b.Fatalf("hello replied %s, want %s", got, wantReply[c])
		}
		lat = append(lat, time.Since(start))
		h.note() // RELOADING
		h.note() // READY
	}
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	b.ReportMetric(float64(pct(0.50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(pct(0.99).Microseconds())/1000, "p99-ms")
}
