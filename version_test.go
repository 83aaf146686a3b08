package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestBinaryVersion builds methodd as it ships inside a git checkout and
// checks that `methodd version` names the checkout's revision (12 hex
// digits, as git rev-parse --short=12 HEAD), its commit time and a clean
// tree, and that --format json agrees. The checkout is a fresh repository
// holding this work tree's files (tracked and new, not ignored), committed
// once: the go command records no revision in a linked worktree (it wants a
// .git directory), and this way the code under test is the code on disk.
func TestBinaryVersion(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed: the go command records no revision without it")
	}
	dir := snapshotCheckout(t)
	head := strings.TrimSpace(gitOut(t, dir, "rev-parse", "--short=12", "HEAD"))
	bin := filepath.Join(t.TempDir(), "methodd")
	build := exec.Command("go", "build", "-buildvcs=true", "-trimpath", "-tags", "nethttpomithttp2", "-ldflags=-s -w", "-o", bin, ".")
	build.Dir, build.Env = dir, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, errOut, code := runMethodd(t, bin, "", "version")
	line := regexp.MustCompile(`^methodd \S+ \(rev ([0-9a-f]{12}), ([0-9TZ:+-]+)\) go\S+ [a-z0-9]+/[a-z0-9]+\n$`)
	m := line.FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("version: exit %d, got %q (stderr %q), want methodd VERSION (rev 12HEX, TIME) GO OS/ARCH", code, out, errOut)
	}
	if m[1] != head {
		t.Errorf("got revision %s, want HEAD %s", m[1], head)
	}
	out, errOut, code = runMethodd(t, bin, "", "version", "--format", "json")
	var v struct{ Revision, Time string }
	if err := json.Unmarshal([]byte(out), &v); code != 0 || err != nil || v.Revision != m[1] || v.Time != m[2] {
		t.Errorf("version --format json: exit %d, got %q (stderr %q, %v), want revision %s and time %s", code, out, errOut, err, m[1], m[2])
	}
}

// snapshotCheckout copies the files of the work tree (git ls-files: tracked
// and untracked, not ignored) into a new git repository and commits them.
func snapshotCheckout(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name := range bytes.SplitSeq([]byte(gitOut(t, ".", "ls-files", "-z", "-co", "--exclude-standard")), []byte{0}) {
		if len(name) > 0 {
			copyFile(t, string(name), filepath.Join(dir, string(name)))
		}
	}
	gitOut(t, dir, "init", "-q")
	gitOut(t, dir, "add", "-A")
	gitOut(t, dir, "-c", "user.name=methodd test", "-c", "user.email=test@methodd.invalid", "-c", "commit.gpgsign=false",
		"commit", "-q", "--no-verify", "-m", "snapshot")
	return dir
}

// copyFile copies src to dst with its permission bits; a tracked file
// deleted from the work tree is left out.
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	fi, err := os.Lstat(src)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		target, err := os.Readlink(src)
		if err == nil {
			err = os.Symlink(target, dst)
		}
		if err != nil {
			t.Fatal(err)
		}
		return
	}
	b, err := os.ReadFile(src)
	if err == nil {
		err = os.WriteFile(dst, b, fi.Mode().Perm())
	}
	if err != nil {
		t.Fatal(err)
	}
}

// gitOut runs git in dir and returns its output.
func gitOut(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		if ee, ok := errors.AsType[*exec.ExitError](err); ok {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, ee.Stderr)
		}
		t.Fatalf("git %s: %v", strings.Join(args, " "), err)
	}
	return string(out)
}
