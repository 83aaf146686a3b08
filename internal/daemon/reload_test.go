package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/methodd/methodd/engine"
	"github.com/methodd/methodd/internal/confperm"
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

// logLines is a slog.Handler keeping each line ("LEVEL msg k=v ...") and
// forwarding it to a channel so tests can wait for a reload outcome.
type logLines struct {
	mu    *sync.Mutex
	all   *[]string
	lines chan string
	attrs []slog.Attr
}

func newLogLines() *logLines {
	return &logLines{mu: &sync.Mutex{}, all: new([]string), lines: make(chan string, 10000)}
}

func (l *logLines) Enabled(context.Context, slog.Level) bool { return true }
func (l *logLines) WithGroup(string) slog.Handler            { return l }
func (l *logLines) WithAttrs(as []slog.Attr) slog.Handler {
	c := *l
	c.attrs = append(append([]slog.Attr(nil), l.attrs...), as...)
	return &c
}
func (l *logLines) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", r.Level, r.Message)
	add := func(a slog.Attr) bool { fmt.Fprintf(&b, " %s=%s", a.Key, a.Value); return true }
	for _, a := range l.attrs {
		add(a)
	}
	r.Attrs(add)
	l.mu.Lock()
	*l.all = append(*l.all, b.String())
	l.mu.Unlock()
	select {
	case l.lines <- b.String():
	default:
	}
	return nil
}

// text returns every line logged so far.
func (l *logLines) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(*l.all, "\n")
}

// reloadHarness is a running reloader on a config in a temporary directory,
// with a real notify socket.
type reloadHarness struct {
	t     testing.TB
	path  string
	eng   *engine.Engine
	r     *reloader
	logs  *logLines
	notes chan string // sd_notify datagrams, read as they arrive
}

// startReloader writes initial to path (created by the caller's layout, or
// dir/handlers.yaml when path is ""), loads it as `methodd run` would, and
// runs a reloader on it until the test ends.
func startReloader(t testing.TB, path, initial string) *reloadHarness {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "handlers.yaml")
		writeConfig(t, path, initial)
	}
	h := &reloadHarness{t: t, path: path, logs: newLogLines()}
	sock := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	h.notes = make(chan string, 10000)
	notesDone := make(chan struct{})
	go func() { // drains the socket as systemd does, until it is closed
		defer close(notesDone)
		buf := make([]byte, 4096)
		for {
			n, _, err := conn.ReadFromUnix(buf)
			if err != nil {
				return
			}
			h.notes <- string(buf[:n])
		}
	}()
	t.Cleanup(func() { conn.Close(); <-notesDone })

	set, data, err := loadConfig(path, os.Geteuid(), parseHandlers)
	if err != nil {
		t.Fatalf("initial config: %v", err)
	}
	h.eng = engine.New(set)
	h.r, err = newReloader(reloaderConfig{
		Path:      path,
		Baseline:  data,
		Parse:     parseHandlers,
		Engine:    h.eng,
		Notifier:  sdnotify.New(func(k string) string { return map[string]string{"NOTIFY_SOCKET": sock}[k] }),
		Logger:    slog.New(h.logs),
		DaemonUID: os.Geteuid(),
		Status:    func(s string) string { return "connected; " + s },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("reloader Run: %v", err)
		}
	})
	h.waitLog("watching config for changes")
	return h
}

// parseHandlers is engine.Parse with default options, as run would bind it.
func parseHandlers(file string, data []byte) (*engine.Set, error) {
	return engine.Parse(file, data, engine.Options{})
}

func writeConfig(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// waitLog waits for a log line containing sub and returns it.
func (h *reloadHarness) waitLog(sub string) string {
	h.t.Helper()
	timeout := time.After(reloadWait)
	for {
		select {
		case l := <-h.logs.lines:
			if strings.Contains(l, sub) {
				return l
			}
		case <-timeout:
			h.t.Fatalf("no log line containing %q within %v; log:\n%s", sub, reloadWait, h.logs.text())
			return ""
		}
	}
}

// outcome waits for the next reload outcome ("reloaded" or a rejection).
func (h *reloadHarness) outcome() string {
	h.t.Helper()
	timeout := time.After(reloadWait)
	for {
		select {
		case l := <-h.logs.lines:
			if strings.Contains(l, " reloaded ") || strings.Contains(l, "reload rejected") ||
				strings.Contains(l, "reload refused") || strings.Contains(l, "reload failed") {
				return l
			}
		case <-timeout:
			h.t.Fatalf("no reload outcome within %v; log:\n%s", reloadWait, h.logs.text())
			return ""
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
	if !strings.HasPrefix(got, "READY=1\nSTATUS=connected; ") || !strings.Contains(got, status) || strings.Count(got, "\n") != 1 {
		h.t.Fatalf("second notification %q, want READY=1 and a one-line STATUS containing %q", got, status)
	}
}

// call asks "hello" and returns "STATUS PAYLOAD".
func (h *reloadHarness) call() string {
	rep := h.eng.Call(context.Background(), engine.Request{Method: "hello", RequestID: "1", DeviceID: "dev"})
	return fmt.Sprintf("%d %s", rep.Status, strings.Join(strings.Fields(string(rep.Payload)), ""))
}

// expectServing checks that "hello" is answered by config.
func (h *reloadHarness) expectServing(config string) {
	h.t.Helper()
	if got := h.call(); got != wantReply[config] {
		h.t.Fatalf("hello replied %s, want %s", got, wantReply[config])
	}
}

func renameInto(t testing.TB, path, content string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), ".handlers.yaml.tmp")
	writeConfig(t, tmp, content)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
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
				if o := h.outcome(); !strings.Contains(o, " reloaded ") {
					t.Fatalf("outcome %q, want reloaded", o)
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
	if o := h.outcome(); !strings.Contains(o, "ERROR reload rejected") {
		t.Fatalf("outcome %q, want an ERROR reload rejected", o)
	}
	pos := regexp.MustCompile(`diagnostic=` + regexp.QuoteMeta(h.path) + `:5:\d+: methods\.hello\.reply\.payload: `)
	if !pos.MatchString(h.logs.text()) {
		t.Fatalf("log lacks the diagnostic with file:line:col; log:\n%s", h.logs.text())
	}
	h.expectServing(configA)
	h.expectNotes("reload rejected at")
	if !strings.Contains(h.r.Summary(), "reload rejected") || !strings.Contains(h.r.Summary(), ":5:") {
		t.Fatalf("Summary() = %q, want the rejection and its first position", h.r.Summary())
	}

	writeConfig(t, h.path, configB)
	if o := h.outcome(); !strings.Contains(o, "INFO reloaded") || !strings.Contains(o, "methods=") {
		t.Fatalf("outcome %q, want INFO reloaded with the method count", o)
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
		switch o := h.outcome(); {
		case strings.Contains(o, " reloaded "):
			valid++
		case strings.Contains(o, "reload rejected"):
			rejected++
		default:
			t.Fatalf("rewrite %d: outcome %q", i, o)
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
	o := h.outcome()
	if !strings.Contains(o, "reload refused: unsafe config permissions") || !strings.Contains(o, "chmod go-w "+h.path) {
		t.Fatalf("outcome %q, want a refusal naming the fix", o)
	}
	h.expectServing(configA)
	h.expectNotes("reload rejected at")

	// Fixing the mode changes no bytes: the operator reloads (SIGHUP path).
	if err := os.Chmod(h.path, 0o644); err != nil {
		t.Fatal(err)
	}
	h.r.Reload()
	if o := h.outcome(); !strings.Contains(o, " reloaded ") || !strings.Contains(o, "trigger=signal") {
		t.Fatalf("outcome %q, want reloaded by the forced trigger", o)
	}
	h.expectServing(configB)
	h.expectNotes("reloaded at")
}

func TestReloadOnSIGHUP(t *testing.T) {
	// Whatever happens, this process must not die of its own SIGHUP.
	guard := make(chan os.Signal, 1)
	signal.Notify(guard, syscall.SIGHUP)
	defer signal.Stop(guard)

	h := startReloader(t, "", configA)
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	h.waitLog("SIGHUP received")
	if o := h.outcome(); !strings.Contains(o, " reloaded ") || !strings.Contains(o, "trigger=signal") {
		t.Fatalf("outcome %q, want a forced reload of identical bytes", o)
	}
	h.expectNotes("reloaded at")
	h.expectServing(configA)
}

func TestLoadConfigAtStartup(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "handlers.yaml")
	writeConfig(t, p, configA)
	set, data, err := loadConfig(p, os.Geteuid(), parseHandlers)
	if err != nil || string(data) != configA || len(set.Methods()) == 0 {
		t.Fatalf("loadConfig(valid) = %v, %q, %v", set, data, err)
	}

	writeConfig(t, p, configBad)
	var diags engine.Diagnostics
	if _, _, err := loadConfig(p, os.Geteuid(), parseHandlers); !errors.As(err, &diags) || diags[0].Line != 5 {
		t.Fatalf("loadConfig(invalid) error = %v, want engine.Diagnostics at line 5", err)
	}

	writeConfig(t, p, configA)
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, _, err := loadConfig(p, os.Geteuid(), parseHandlers); !errors.Is(err, confperm.ErrUnsafe) {
		t.Fatalf("loadConfig(world-writable dir) error = %v, want confperm.ErrUnsafe", err)
	}
}

// BenchmarkReloadLatency measures, per reload, the time from the rename of
// a new config into place to the first call answered by it (issued as soon
// as the swap is logged), and reports p50/p99. -benchtime=50x for the
// issue's 50 reloads.
func BenchmarkReloadLatency(b *testing.B) {
	h := startReloader(b, "", configA)
	var lat []time.Duration
	for i := 0; b.Loop(); i++ {
		c := []string{configB, configA}[i%2]
		start := time.Now()
		renameInto(b, h.path, c)
		if o := h.outcome(); !strings.Contains(o, " reloaded ") {
			b.Fatalf("outcome %q", o)
		}
		if got := h.call(); got != wantReply[c] {
			b.Fatalf("hello replied %s, want %s", got, wantReply[c])
		}
		lat = append(lat, time.Since(start))
		h.note() // RELOADING
		h.note() // READY
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	b.ReportMetric(float64(pct(0.50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(pct(0.99).Microseconds())/1000, "p99-ms")
}

// installSystemdAnalyze is how scripts/test.sh provides systemd-analyze on
// Debian (the systemd package ships it; no running systemd is needed).
const installSystemdAnalyze = "command -v systemd-analyze || (apt-get update && apt-get install -y systemd)"

// TestSystemdUnitVerifies runs `systemd-analyze verify` on
// systemd/methodd.service with ExecStart's binary pointed at an executable
// that exists here (verify checks it), and fails on any complaint, since
// verify reports unknown keys and bad values as warnings with exit status 0.
func TestSystemdUnitVerifies(t *testing.T) {
	tool, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatalf("systemd-analyze is not installed; scripts/test.sh installs it with: %s", installSystemdAnalyze)
	}
	unit, err := os.ReadFile(filepath.Join("systemd", "methodd.service"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"\nType=notify\n",
		"\nExecStart=/usr/local/bin/methodd run --config /etc/methodd/handlers.yaml",
		"\nExecReload=/bin/kill -HUP $MAINPID\n",
		"\nRestart=on-failure\n",
		"\nWatchdogSec=",
		"\nLoadCredential=device-connection-string:/etc/methodd/device-connection-string\n",
		"\nEnvironmentFile=-/etc/methodd/methodd.env\n",
		"\nNoNewPrivileges=yes\n",
		"\nProtectSystem=strict\n",
	} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("systemd/methodd.service lacks %q", strings.TrimSpace(want))
		}
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(t.TempDir(), "methodd.service")
	local := strings.ReplaceAll(string(unit), "/usr/local/bin/methodd", self)
	if err := os.WriteFile(tmp, []byte(local), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(tool, "verify", "--man=no", tmp).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify %s (ExecStart binary -> %s): %v\n%s", tmp, self, err, out)
	}
}
