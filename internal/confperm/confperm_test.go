//go:build unix

package confperm

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// tree builds a private directory (mode 0755) holding handlers.yaml (0644)
// and returns both paths. Its parents are t.TempDir's: the sticky, root-owned
// /tmp when the tests run as root.
func tree(t *testing.T) (dir, file string) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "methodd")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	file = filepath.Join(dir, "handlers.yaml")
	if err := os.WriteFile(file, []byte("version: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, file
}

func chmod(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create files owned by root or by another user")
	}
}

// wantRefused checks that err is an ErrUnsafe naming path, and the fix.
func wantRefused(t *testing.T, err error, path, reason, fix string) {
	t.Helper()
	if !errors.Is(err, ErrUnsafe) {
		t.Fatalf("Check: got %v, want a refusal (ErrUnsafe)", err)
	}
	var e *Error
	if !errors.As(err, &e) || e.Path != path {
		t.Fatalf("Check: refusal %v does not name %s", err, path)
	}
	msg := err.Error()
	for _, want := range []string{path, reason, "mode ", "owner uid ", "fix: " + fix} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
}

func TestSafeTreeAccepted(t *testing.T) {
	_, file := tree(t)
	if err := Check(file, os.Geteuid()); err != nil {
		t.Fatalf("Check(%s) = %v, want nil", file, err)
	}
}

func TestStickyRootDirectoryAccepted(t *testing.T) {
	requireRoot(t)
	dir, file := tree(t)
	chmod(t, dir, 0o777|os.ModeSticky) // like /tmp
	if err := Check(file, 998); err != nil {
		t.Fatalf("Check with a root-owned sticky parent = %v, want nil", err)
	}
	// The real /tmp as well, since that is the usual case.
	if fi, err := os.Stat("/tmp"); err == nil && fi.Mode()&os.ModeSticky != 0 {
		f := filepath.Join(t.TempDir(), "h.yaml")
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := Check(f, 998); err != nil {
			t.Fatalf("Check(%s) under /tmp = %v, want nil", f, err)
		}
	}
}

func TestWritableRefused(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(dir, file string) string // returns the path at fault
		reason  string
	}{
		{"group-writable file", func(dir, file string) string { chmod(t, file, 0o664); return file }, "is group-writable"},
		{"world-writable file", func(dir, file string) string { chmod(t, file, 0o646); return file }, "is world-writable"},
		{"world-writable parent", func(dir, file string) string { chmod(t, dir, 0o777); return dir }, "is world-writable"},
		{"group-writable parent", func(dir, file string) string { chmod(t, dir, 0o775); return dir }, "is group-writable"},
		{"group-writable grandparent", func(dir, file string) string {
			chmod(t, filepath.Dir(dir), 0o770)
			return filepath.Dir(dir)
		}, "is group-writable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir, file := tree(t)
			bad := tc.prepare(dir, file)
			wantRefused(t, Check(file, os.Geteuid()), bad, tc.reason, "chmod go-w "+bad)
		})
	}
}

func TestStickyDirectoryOfOtherOwnerRefused(t *testing.T) {
	requireRoot(t)
	dir, file := tree(t)
	chmod(t, dir, 0o777|os.ModeSticky)
	if err := os.Chown(dir, 12345, 12345); err != nil {
		t.Fatal(err)
	}
	err := Check(file, 998)
	wantRefused(t, err, dir, "owned by neither root nor the daemon's user", "chown root "+dir)
}

func TestOwnerRefused(t *testing.T) {
	requireRoot(t)
	_, file := tree(t)
	if err := os.Chown(file, 12345, 12345); err != nil {
		t.Fatal(err)
	}
	wantRefused(t, Check(file, 998), file, "owned by neither root nor the daemon's user (uid 998", "chown root "+file)
	if err := Check(file, 12345); err != nil {
		t.Fatalf("Check by the owning daemon uid = %v, want nil", err)
	}
}

func TestSymlinkChainChecked(t *testing.T) {
	// A safe link whose target sits in a world-writable directory.
	linkDir, _ := tree(t)
	targetDir, target := tree(t)
	link := filepath.Join(linkDir, "linked.yaml")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if err := Check(link, os.Geteuid()); err != nil {
		t.Fatalf("safe chain: Check = %v, want nil", err)
	}
	chmod(t, targetDir, 0o777)
	wantRefused(t, Check(link, os.Geteuid()), targetDir, "is world-writable", "chmod go-w "+targetDir)

	// A ConfigMap-style relative chain whose ..data target dir is writable.
	cm, _ := tree(t)
	ts := filepath.Join(cm, "..2026_01_01")
	if err := os.Mkdir(ts, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ts, "handlers.yaml"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("..2026_01_01", filepath.Join(cm, "..data")); err != nil {
		t.Fatal(err)
	}
	cmFile := filepath.Join(cm, "cm.yaml")
	if err := os.Symlink("..data/handlers.yaml", cmFile); err != nil {
		t.Fatal(err)
	}
	if err := Check(cmFile, os.Geteuid()); err != nil {
		t.Fatalf("safe configmap chain: Check = %v, want nil", err)
	}
	chmod(t, ts, 0o757)
	wantRefused(t, Check(cmFile, os.Geteuid()), ts, "is world-writable", "chmod go-w "+ts)
}

func TestEveryProblemReported(t *testing.T) {
	dir, file := tree(t)
	chmod(t, dir, 0o777)
	chmod(t, file, 0o666)
	err := Check(file, os.Geteuid())
	for _, p := range []string{dir, file} {
		if !strings.Contains(err.Error(), p+" (mode") {
			t.Errorf("error %q does not report %s", err, p)
		}
	}
}

func TestMissingFileIsNotARefusal(t *testing.T) {
	err := Check(filepath.Join(t.TempDir(), "absent.yaml"), os.Geteuid())
	if err == nil || errors.Is(err, ErrUnsafe) || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Check(missing) = %v, want a not-exist error that is not ErrUnsafe", err)
	}
}
