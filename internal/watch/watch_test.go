package watch

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/methodd/methodd/internal/testkit"
)

// deadline bounds every wait for a delivery. Generous on purpose: the box
// running the tests may be loaded; latency is measured by
// BenchmarkReloadLatency, not asserted here.
const deadline = 10 * time.Second

// logRecorder is a slog.Handler that forwards each message to a channel so
// tests can wait for the watcher to have handled an event.
type logRecorder struct{ msgs chan string }

func (l logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l logRecorder) WithGroup(string) slog.Handler            { return l }
func (l logRecorder) Handle(_ context.Context, r slog.Record) error {
	msg := r.Message
	r.Attrs(func(a slog.Attr) bool {
		msg += " " + a.Key + "=" + a.Value.String()
		return true
	})
	select {
	case l.msgs <- msg:
	default: // a test that does not wait on logs must not block the watcher
	}
	return nil
}

// harness runs one Watcher and collects its deliveries.
type harness struct {
	t    testing.TB
	w    *Watcher
	got  chan Change
	logs chan string
}

func start(t testing.TB, path string, opts Options) *harness {
	t.Helper()
	h := &harness{t: t, got: make(chan Change, 100), logs: make(chan string, 1000)}
	opts.Logger = slog.New(logRecorder{h.logs})
	w, err := New(path, opts)
	if err != nil {
		t.Fatalf("New(%s): %v", path, err)
	}
	h.w = w
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, func(c Change) { h.got <- c }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return h
}

// next waits for the next delivery.
func (h *harness) next() Change {
	h.t.Helper()
	select {
	case c := <-h.got:
		return c
	case <-time.After(deadline):
		h.t.Fatalf("no change delivered within %v", deadline)
		return Change{}
	}
}

// expect waits for the next delivery and checks its content.
func (h *harness) expect(want string) {
	h.t.Helper()
	c := h.next()
	if c.Err != nil {
		h.t.Fatalf("delivery error %v, want content %q", c.Err, want)
	}
	if string(c.Data) != want {
		h.t.Fatalf("delivered %q, want %q", c.Data, want)
	}
}

// waitLog waits until the watcher logs a message containing sub.
func (h *harness) waitLog(sub string) {
	h.t.Helper()
	timeout := time.After(deadline)
	for {
		select {
		case m := <-h.logs:
			if strings.Contains(m, sub) {
				return
			}
		case <-timeout:
			h.t.Fatalf("watcher never logged %q", sub)
		}
	}
}

// expectNone checks nothing is queued right now (used after a later,
// distinct delivery proved the watcher has handled everything before it).
func (h *harness) expectNone() {
	h.t.Helper()
	select {
	case c := <-h.got:
		h.t.Fatalf("unexpected extra delivery %q (forced=%v err=%v)", c.Data, c.Forced, c.Err)
	default:
	}
}

func write(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestWriteInPlace(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "handlers.yaml")
	write(t, p, "v1")
	h := start(t, p, Options{Debounce: 300 * time.Millisecond})

	write(t, p, "v2: truncate and write")
	h.expect("v2: truncate and write")

	// Truncate, then several writes with syncs in between: one delivery of
	// the whole, not of the pieces.
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, part := range []string{"v3: ", "in ", "several ", "writes"} {
		if _, err := f.WriteString(part); err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	h.expect("v3: in several writes")
	h.expectNone()
}

func TestAtomicRename(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "handlers.yaml")
	write(t, p, "v1")
	h := start(t, p, Options{})

	// mv / configuration management: write a temporary beside it, rename over.
	tmp := filepath.Join(dir, ".handlers.yaml.tmp")
	write(t, tmp, "v2 via mv")
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
	h.expect("v2 via mv")

	// vim with writebackup and backupcopy=no: probe file 4913, rename the
	// original to a backup, write a new file, delete the backup.
	write(t, filepath.Join(dir, "4913"), "")
	if err := os.Remove(filepath.Join(dir, "4913")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(p, p+"~"); err != nil {
		t.Fatal(err)
	}
	write(t, p, "v3 via vim")
	if err := os.Remove(p + "~"); err != nil {
		t.Fatal(err)
	}
	h.expect("v3 via vim")
	h.expectNone()
}

func TestGitCheckout(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatalf("git is required for this test: %v", err)
	}
	repo := t.TempDir()
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	conf := filepath.Join(repo, "methodd", "handlers.yaml")
	if err := os.Mkdir(filepath.Dir(conf), 0o755); err != nil {
		t.Fatal(err)
	}
	git("init", "-q", "-b", "main")
	write(t, conf, "revision one\n")
	git("add", ".")
	git("commit", "-q", "-m", "one")
	write(t, conf, "revision two\n")
	git("commit", "-q", "-am", "two")

	h := start(t, conf, Options{})
	git("checkout", "-q", "HEAD~1")
	h.expect("revision one\n")
	git("checkout", "-q", "main")
	h.expect("revision two\n")
	h.expectNone()
}

func TestConfigMapSymlinkSwap(t *testing.T) {
	dir := t.TempDir()
	update := testkit.ConfigMap(t, dir, "configmap v1")
	h := start(t, filepath.Join(dir, "handlers.yaml"), Options{})
	for _, v := range []string{"configmap v2", "configmap v3", "configmap v4"} {
		update(v)
		h.expect(v)
	}
	h.expectNone()
}

func TestSymlinkedFile(t *testing.T) {
	etc, srv := t.TempDir(), t.TempDir()
	real1, real2 := filepath.Join(srv, "a.yaml"), filepath.Join(srv, "b.yaml")
	write(t, real1, "target a")
	write(t, real2, "target b")
	link := filepath.Join(etc, "handlers.yaml")
	if err := os.Symlink(real1, link); err != nil {
		t.Fatal(err)
	}
	h := start(t, link, Options{})

	// An edit of the target, in a directory other than the link's.
	write(t, real1, "target a, edited")
	h.expect("target a, edited")

	// Re-pointing the link (ln -sfn does symlink + rename).
	if err := os.Symlink(real2, link+".new"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(link+".new", link); err != nil {
		t.Fatal(err)
	}
	h.expect("target b")

	// The old target's directory is the same here, but the old file is no
	// longer relevant: editing it delivers nothing, editing the new one does.
	write(t, real1, "stale target")
	write(t, real2, "target b, edited")
	h.expect("target b, edited")
	h.expectNone()
}

func TestDeleteAndRecreate(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "handlers.yaml")
	write(t, p, "v1")
	h := start(t, p, Options{})

	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	h.waitLog("config missing")
	write(t, p, "v2 recreated")
	h.expect("v2 recreated")
	h.expectNone()
}

func TestIdenticalRewriteNotDelivered(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "handlers.yaml")
	write(t, p, "same")
	h := start(t, p, Options{})

	write(t, p, "same")
	h.waitLog("config unchanged")
	tmp := filepath.Join(dir, "tmp")
	write(t, tmp, "same")
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
	h.waitLog("config unchanged")
	write(t, p, "different")
	h.expect("different") // the next delivery, so nothing came before it
	h.expectNone()
}

func TestUnrelatedFilesIgnored(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "handlers.yaml")
	write(t, p, "v1")
	h := start(t, p, Options{})
	h.waitLog("config unchanged") // the start-up check is done

	for i := range 5 {
		write(t, filepath.Join(dir, "methodd.env"), fmt.Sprint(i))
		write(t, filepath.Join(dir, "handlers.yaml.example"), fmt.Sprint(i))
	}
	write(t, p, "v2")
	h.expect("v2")
	for {
		select {
		case m := <-h.logs:
			if strings.Contains(m, "methodd.env") || strings.Contains(m, ".example") || strings.Contains(m, "unchanged") {
				t.Fatalf("an unrelated file was looked at: %q", m)
			}
		default:
			return
		}
	}
}

func TestTriggerForcesDelivery(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "handlers.yaml")
	write(t, p, "v1")
	h := start(t, p, Options{})

	h.w.Trigger()
	c := h.next()
	if !c.Forced || string(c.Data) != "v1" || c.Err != nil {
		t.Fatalf("Trigger delivered %+v, want forced v1", c)
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	h.waitLog("config missing")
	h.w.Trigger()
	c = h.next()
	if !c.Forced || c.Err == nil || !os.IsNotExist(c.Err) {
		t.Fatalf("Trigger on a missing file delivered %+v, want a not-exist error", c)
	}
	write(t, p, "v1") // same bytes as the last delivery: not delivered again
	h.waitLog("config unchanged")
	write(t, p, "v2")
	h.expect("v2")
	h.expectNone()
}

func TestStartupCheckAgainstBaseline(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "handlers.yaml")
	write(t, p, "on disk")
	h := start(t, p, Options{Baseline: []byte("what the caller loaded earlier")})
	h.expect("on disk")

	q := filepath.Join(t.TempDir(), "handlers.yaml")
	write(t, q, "same")
	h2 := start(t, q, Options{Baseline: []byte("same")})
	h2.waitLog("config unchanged")
	h2.expectNone()
}

func TestNewFailsWithoutDirectory(t *testing.T) {
	_, err := New(filepath.Join(t.TempDir(), "missing", "handlers.yaml"), Options{})
	if err == nil {
		t.Fatal("New on a path whose directory does not exist: got nil error")
	}
}

func TestResolve(t *testing.T) {
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Mkdir(filepath.Join(dir, "..v1"), 0o755))
	must(os.Symlink("..v1", filepath.Join(dir, "..data")))
	must(os.Symlink("..data/f", filepath.Join(dir, "f")))
	must(os.Symlink(filepath.Join(dir, "f"), filepath.Join(dir, "abs")))
	must(os.Symlink("loop2", filepath.Join(dir, "loop1")))
	must(os.Symlink("loop1", filepath.Join(dir, "loop2")))
	tests := []struct {
		name, path string
		links      []string
		final      string
		wantErr    bool
	}{
		{"plain missing file", dir + "/plain", nil, dir + "/plain", false},
		{"configmap chain", dir + "/f", []string{dir + "/f", dir + "/..data"}, dir + "/..v1/f", false},
		{"absolute link to a chain", dir + "/abs", []string{dir + "/abs", dir + "/f", dir + "/..data"}, dir + "/..v1/f", false},
		{"loop", dir + "/loop1", nil, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := resolve(tc.path)
			if (err != nil) != tc.wantErr {
				t.Fatalf("resolve(%s) error %v, want error %v", tc.path, err, tc.wantErr)
			}
			if tc.wantErr {
				return
			}
			if !slices.Equal(c.links, tc.links) || c.final != tc.final {
				t.Fatalf("resolve(%s) = links %v final %s, want links %v final %s", tc.path, c.links, c.final, tc.links, tc.final)
			}
		})
	}
}

// BenchmarkReloadLatency measures the time from an atomic rename of the file
// to its delivery (debounce included) and reports p50 and p99. Run with
// -benchtime=50x for the 50 renames of the issue.
func BenchmarkReloadLatency(b *testing.B) {
	dir := b.TempDir()
	p := filepath.Join(dir, "handlers.yaml")
	write(b, p, "v0")
	h := start(b, p, Options{})
	var lat []time.Duration
	for i := 0; b.Loop(); i++ {
		tmp := filepath.Join(dir, "tmp")
		content := fmt.Sprintf("v%d", i+1)
		write(b, tmp, content)
		t0 := time.Now()
		if err := os.Rename(tmp, p); err != nil {
			b.Fatal(err)
		}
		h.expect(content)
		lat = append(lat, time.Since(t0))
	}
	reportPercentiles(b, lat)
}

func reportPercentiles(b *testing.B, lat []time.Duration) {
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	b.ReportMetric(float64(pct(0.50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(pct(0.99).Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
}
