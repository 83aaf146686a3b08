package watch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/methodd/methodd/internal/testkit"
)

// deadline bounds every wait for a Change. Generous on purpose: the box
// running the tests may be loaded; latency is measured by
// BenchmarkReloadLatency, not asserted here.
const deadline = 10 * time.Second

// harness runs one Watcher and collects the outcome of its checks.
type harness struct {
	t    testing.TB
	w    *Watcher
	got  chan Change
	gate chan struct{} // non-nil: fn waits on it after each Change
}

// start runs a Watcher on path until the test ends.
func start(t testing.TB, path string, opts Options) *harness {
	t.Helper()
	return run(t, path, opts, false)
}

// startHeld is start, but fn does not return after reporting a Change until
// the test calls release: while the test holds a Change it has received,
// Run is known to be inside fn.
func startHeld(t testing.TB, path string, opts Options) *harness {
	t.Helper()
	return run(t, path, opts, true)
}

func run(t testing.TB, path string, opts Options, held bool) *harness {
	t.Helper()
	w, err := New(path, opts)
	if err != nil {
		t.Fatalf("New(%s): %v", path, err)
	}
	h := &harness{t: t, w: w, got: make(chan Change, 100)}
	if held {
		h.gate = make(chan struct{})
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- w.Run(ctx, func(c Change) {
			select {
			case h.got <- c:
			case <-ctx.Done():
				return
			}
			if h.gate != nil {
				select {
				case <-h.gate:
				case <-ctx.Done():
				}
			}
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return h
}

// release lets fn return from the Change a held harness reported last.
func (h *harness) release() {
	h.t.Helper()
	select {
	case h.gate <- struct{}{}:
	case <-time.After(deadline):
		h.t.Fatalf("Run did not wait in fn within %v", deadline)
	}
}

// next waits for the next Change and checks it keeps Change's contract.
func (h *harness) next() Change {
	h.t.Helper()
	select {
	case c := <-h.got:
		if err := contract(c); err != nil {
			h.t.Fatalf("%s breaks the Change contract: %v", describe(c), err)
		}
		return c
	case <-time.After(deadline):
		h.t.Fatalf("no check reported within %v", deadline)
		return Change{}
	}
}

// expect waits for the next Change and fails unless it reports want.
func (h *harness) expect(want outcome) {
	h.t.Helper()
	if c := h.next(); !want.matches(c) {
		h.t.Fatalf("got %s, want %s", describe(c), want)
	}
}

// expectReplaced expects the delivery of content written by deleting the
// file and creating it anew (git checkout, vim's backup rename). Should the
// machine stall longer than the debounce between the two, they are two
// bursts, and the check after the first finds the file missing: one such
// Change may come first; nothing else may.
func (h *harness) expectReplaced(content string) {
	h.t.Helper()
	c := h.next()
	if missing().matches(c) {
		c = h.next()
	}
	if want := delivered(content); !want.matches(c) {
		h.t.Fatalf("got %s, want %s (after at most one %s)", describe(c), want, missing())
	}
}

// fence triggers a check and expects the very next Change to be its
// outcome, want (forced): a Change the test has not accounted for, already
// reported or being reported, fails the test. (A burst still debouncing is
// joined by the forced check, so it cannot be told apart.)
func (h *harness) fence(want outcome) {
	h.t.Helper()
	h.w.Trigger()
	h.expect(want)
}

// outcome is what a test expects one Change to report.
type outcome struct {
	content   string // delivered as Data, or found Unchanged
	unchanged bool
	missing   bool // Err is fs.ErrNotExist
	forced    bool
}

// delivered is a Change delivering content as Data, unforced.
func delivered(content string) outcome { return outcome{content: content} }

// unchanged is an unforced Change finding content, identical to the last
// delivered, Unchanged.
func unchanged(content string) outcome { return outcome{content: content, unchanged: true} }

// missing is an unforced Change finding the file missing.
func missing() outcome { return outcome{missing: true} }

// byTrigger is o, forced.
func (o outcome) byTrigger() outcome {
	o.forced = true
	return o
}

func (o outcome) matches(c Change) bool {
	switch {
	case c.Forced != o.forced:
		return false
	case o.missing:
		return errors.Is(c.Err, fs.ErrNotExist)
	case o.unchanged:
		return c.Unchanged && c.Digest == digest(o.content)
	default:
		return c.Data != nil && string(c.Data) == o.content
	}
}

func (o outcome) String() string {
	s := fmt.Sprintf("Data %q", o.content)
	switch {
	case o.missing:
		s = "Err fs.ErrNotExist"
	case o.unchanged:
		s = fmt.Sprintf("Unchanged (%q)", o.content)
	}
	if o.forced {
		s += ", Forced"
	}
	return s
}

// contract returns how c breaks Change's documented contract, or nil:
// exactly one of Data, Unchanged and Err; Digest the SHA-256 of Data, set
// when Unchanged, "" with Err; Unchanged never forced.
func contract(c Change) error {
	set := 0
	for _, b := range []bool{c.Data != nil, c.Unchanged, c.Err != nil} {
		if b {
			set++
		}
	}
	switch {
	case set != 1:
		return fmt.Errorf("%d of Data, Unchanged and Err are set, want 1", set)
	case c.Err != nil && c.Digest != "":
		return fmt.Errorf("Digest %q with Err, want \"\"", c.Digest)
	case c.Data != nil && c.Digest != digest(string(c.Data)):
		return fmt.Errorf("Digest %q, want Data's %q", c.Digest, digest(string(c.Data)))
	case c.Unchanged && len(c.Digest) != hex.EncodedLen(sha256.Size):
		return fmt.Errorf("Unchanged with Digest %q, want a hex SHA-256", c.Digest)
	case c.Unchanged && c.Forced:
		return errors.New("Unchanged on a forced check")
	}
	return nil
}

func describe(c Change) string {
	var s string
	switch {
	case c.Err != nil:
		s = fmt.Sprintf("Err %v", c.Err)
	case c.Unchanged:
		s = "Unchanged (digest " + c.Digest + ")"
	default:
		s = fmt.Sprintf("Data %q", c.Data)
	}
	if c.Forced {
		s += ", Forced"
	}
	return s
}

func digest(content string) string {
	sum := sha256.Sum256([]byte(content))
	return hex.EncodeToString(sum[:])
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
	h.expect(unchanged("v1")) // the start-up check

	write(t, p, "v2: truncate and write")
	h.expect(delivered("v2: truncate and write"))

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
	h.expect(delivered("v3: in several writes"))
	h.fence(delivered("v3: in several writes").byTrigger())
}

func TestAtomicRename(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "handlers.yaml")
	write(t, p, "v1")
	h := start(t, p, Options{})
	h.expect(unchanged("v1"))

	// mv / configuration management: write a temporary beside it, rename
	// over. The file is never missing, so exactly one Change.
	tmp := filepath.Join(dir, ".handlers.yaml.tmp")
	write(t, tmp, "v2 via mv")
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
	h.expect(delivered("v2 via mv"))

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
	h.expectReplaced("v3 via vim")
	h.fence(delivered("v3 via vim").byTrigger())
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
	h.expect(unchanged("revision two\n"))
	// git checkout unlinks the file and creates it anew.
	git("checkout", "-q", "HEAD~1")
	h.expectReplaced("revision one\n")
	git("checkout", "-q", "main")
	h.expectReplaced("revision two\n")
	h.fence(delivered("revision two\n").byTrigger())
}

func TestConfigMapSymlinkSwap(t *testing.T) {
	dir := t.TempDir()
	update := testkit.ConfigMap(t, dir, "configmap v1")
	h := start(t, filepath.Join(dir, "handlers.yaml"), Options{})
	h.expect(unchanged("configmap v1"))
	// Each swap replaces ..data atomically: the file is never missing, and
	// the removal of the old version, even if it comes a debounce later,
	// is outside the re-resolved chain. Exactly one Change each.
	for _, v := range []string{"configmap v2", "configmap v3", "configmap v4"} {
		update(v)
		h.expect(delivered(v))
	}
	h.fence(delivered("configmap v4").byTrigger())
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
	h.expect(unchanged("target a"))

	// An edit of the target, in a directory other than the link's.
	write(t, real1, "target a, edited")
	h.expect(delivered("target a, edited"))

	// Re-pointing the link (ln -sfn does symlink + rename).
	if err := os.Symlink(real2, link+".new"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(link+".new", link); err != nil {
		t.Fatal(err)
	}
	h.expect(delivered("target b"))

	// The old target's directory is the same here, but the old file is no
	// longer relevant: editing it delivers nothing, editing the new one does.
	// (TestRelevant shows the old target's events are dropped, which this
	// burst alone cannot tell.)
	write(t, real1, "stale target")
	write(t, real2, "target b, edited")
	h.expect(delivered("target b, edited"))
	h.fence(delivered("target b, edited").byTrigger())
}

func TestDeleteAndRecreate(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "handlers.yaml")
	write(t, p, "v1")
	h := start(t, p, Options{})
	h.expect(unchanged("v1"))

	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	h.expect(missing()) // reported, unforced, and watching goes on
	write(t, p, "v2 recreated")
	h.expect(delivered("v2 recreated"))
	h.fence(delivered("v2 recreated").byTrigger())
}

func TestCreatedAfterStart(t *testing.T) {
	p := filepath.Join(t.TempDir(), "handlers.yaml")
	h := start(t, p, Options{})
	h.expect(missing())
	write(t, p, "v1")
	h.expect(delivered("v1"))
	h.fence(delivered("v1").byTrigger())
}

func TestUnreadableReported(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "handlers.yaml")
	write(t, p, "v1")
	h := start(t, p, Options{})
	h.expect(unchanged("v1"))

	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	h.expect(missing())
	// A directory where the file should be: readable by nobody, not missing.
	if err := os.Mkdir(p, 0o755); err != nil {
		t.Fatal(err)
	}
	if c := h.next(); c.Err == nil || errors.Is(c.Err, fs.ErrNotExist) || c.Forced {
		t.Fatalf("got %s, want an unforced read error other than fs.ErrNotExist", describe(c))
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	h.expect(missing())
	write(t, p, "v2")
	h.expect(delivered("v2"))
	h.fence(delivered("v2").byTrigger())
}

func TestIdenticalRewriteReportedUnchanged(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "handlers.yaml")
	write(t, p, "same")
	h := start(t, p, Options{})
	h.expect(unchanged("same"))

	write(t, p, "same")
	h.expect(unchanged("same"))
	tmp := filepath.Join(dir, "tmp")
	write(t, tmp, "same")
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
	h.expect(unchanged("same"))
	write(t, p, "different")
	h.expect(delivered("different"))
	write(t, p, "different") // compared with the last delivery, not the start
	h.expect(unchanged("different"))
	h.fence(delivered("different").byTrigger())
}

func TestUnrelatedFilesIgnored(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "handlers.yaml")
	write(t, p, "v1")
	h := start(t, p, Options{})
	h.expect(unchanged("v1"))

	// Had these been relevant, a check (Unchanged) would come first unless
	// their burst joined the next one: TestRelevant pins the filter itself.
	for i := range 5 {
		write(t, filepath.Join(dir, "methodd.env"), fmt.Sprint(i))
		write(t, filepath.Join(dir, "handlers.yaml.example"), fmt.Sprint(i))
	}
	write(t, p, "v2")
	h.expect(delivered("v2"))
	h.fence(delivered("v2").byTrigger())
}

// TestRelevant checks the event filter directly, without timing: events on
// the chain's names and watched directories count, others do not, and a
// re-pointed link's old target stops counting after the next check.
func TestRelevant(t *testing.T) {
	etc, srv := evalTempDir(t), evalTempDir(t)
	a, b := filepath.Join(srv, "a.yaml"), filepath.Join(srv, "b.yaml")
	write(t, a, "a")
	write(t, b, "b")
	link := filepath.Join(etc, "handlers.yaml")
	if err := os.Symlink(a, link); err != nil {
		t.Fatal(err)
	}
	w, err := New(link, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	type event struct {
		name string
		op   fsnotify.Op
		want bool
	}
	check := func(when string, evs []event) {
		t.Helper()
		for _, e := range evs {
			if got := w.relevant(fsnotify.Event{Name: e.name, Op: e.op}); got != e.want {
				t.Errorf("%s: relevant(%s %s) = %v, want %v", when, e.op, e.name, got, e.want)
			}
		}
	}
	check("linked to a.yaml", []event{
		{link, fsnotify.Write, true},
		{link, fsnotify.Rename, true},
		{a, fsnotify.Write, true},
		{a, fsnotify.Remove, true},
		{b, fsnotify.Write, false},
		{filepath.Join(etc, "methodd.env"), fsnotify.Write, false},
		{filepath.Join(etc, "handlers.yaml.example"), fsnotify.Create, false},
		{link + ".new", fsnotify.Create, false},
		{filepath.Join(srv, "a.yaml~"), fsnotify.Rename, false},
	})

	if err := os.Symlink(b, link+".new"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(link+".new", link); err != nil {
		t.Fatal(err)
	}
	var got []Change
	w.check(false, func(c Change) { got = append(got, c) })
	if len(got) != 1 || !delivered("b").matches(got[0]) {
		t.Fatalf("check after re-pointing reported %v, want one %s", got, delivered("b"))
	}
	check("re-pointed to b.yaml", []event{
		{a, fsnotify.Write, false},
		{b, fsnotify.Write, true},
		{link, fsnotify.Write, true},
		{etc, fsnotify.Remove, true}, // a watched directory is gone
	})
}

// evalTempDir is t.TempDir with symlinks resolved, so paths compare equal
// to what resolve records.
func evalTempDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestTriggerDeliversIdenticalContent(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "handlers.yaml")
	write(t, p, "v1")
	h := start(t, p, Options{})
	h.expect(unchanged("v1"))

	h.w.Trigger()
	h.expect(delivered("v1").byTrigger()) // same bytes, delivered anyway
	write(t, p, "v1")
	h.expect(unchanged("v1")) // the forced delivery was the last one
	write(t, p, "v2")
	h.expect(delivered("v2"))
	h.fence(delivered("v2").byTrigger())
}

func TestTriggerOnMissingFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "handlers.yaml")
	write(t, p, "v1")
	h := start(t, p, Options{})
	h.expect(unchanged("v1"))

	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	h.expect(missing())
	h.w.Trigger()
	h.expect(missing().byTrigger())
	write(t, p, "v1") // same bytes as the last delivery: not delivered again
	h.expect(unchanged("v1"))
	write(t, p, "v2")
	h.expect(delivered("v2"))
	h.fence(delivered("v2").byTrigger())
}

func TestTriggersCoalesce(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "handlers.yaml")
	write(t, p, "v1")
	h := startHeld(t, p, Options{})
	h.expect(unchanged("v1"))

	// Run is inside fn: the triggers wait, and coalesce into one.
	for range 3 {
		h.w.Trigger()
	}
	h.release()
	h.expect(delivered("v1").byTrigger())
	h.release()
	// The next Change is the write's, not a second forced check.
	write(t, p, "v2")
	h.expect(delivered("v2"))
	h.release()
}

func TestStartupCheck(t *testing.T) {
	tests := []struct {
		name     string
		onDisk   string // "" means no file
		baseline []byte
		want     outcome
	}{
		{"file equals Baseline", "same", []byte("same"), unchanged("same")},
		{"file differs from Baseline", "on disk", []byte("what the caller loaded earlier"), delivered("on disk")},
		{"no Baseline: content at New", "v1", nil, unchanged("v1")},
		{"file missing", "", nil, missing()},
		{"file missing, Baseline given", "", []byte("loaded"), missing()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "handlers.yaml")
			if tc.onDisk != "" {
				write(t, p, tc.onDisk)
			}
			h := start(t, p, Options{Baseline: tc.baseline})
			h.expect(tc.want)
			if tc.onDisk == "" {
				h.fence(missing().byTrigger())
			} else {
				h.fence(delivered(tc.onDisk).byTrigger())
			}
		})
	}
}

// TestEditDuringStartupCheck renames new content in while the start-up
// check is due: the edit is delivered once, whichever way the race goes.
// The check may find the old file (Unchanged v1, then the rename's own
// check) or the new one; if it finds the new one before Run has handled the
// rename's event, that event's check finds v2 Unchanged.
func TestEditDuringStartupCheck(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "handlers.yaml")
	write(t, p, "v1")
	tmp := filepath.Join(dir, "tmp")
	write(t, tmp, "v2")
	h := start(t, p, Options{})
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
	c := h.next()
	if unchanged("v1").matches(c) {
		c = h.next()
	}
	if want := delivered("v2"); !want.matches(c) {
		t.Fatalf("got %s, want %s (after at most one %s)", describe(c), want, unchanged("v1"))
	}
	h.w.Trigger()
	c = h.next()
	if unchanged("v2").matches(c) {
		c = h.next()
	}
	if want := delivered("v2").byTrigger(); !want.matches(c) {
		t.Fatalf("got %s, want %s (after at most one %s)", describe(c), want, unchanged("v2"))
	}
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
	h.expect(unchanged("v0"))
	var lat []time.Duration
	for i := 0; b.Loop(); i++ {
		tmp := filepath.Join(dir, "tmp")
		content := fmt.Sprintf("v%d", i+1)
		write(b, tmp, content)
		t0 := time.Now()
		if err := os.Rename(tmp, p); err != nil {
			b.Fatal(err)
		}
		h.expect(delivered(content))
		lat = append(lat, time.Since(t0))
	}
	reportPercentiles(b, lat)
}

func reportPercentiles(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	b.ReportMetric(float64(pct(0.50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(pct(0.99).Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
}
