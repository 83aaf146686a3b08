package handlersfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/methodd/methodd/engine"
	"github.com/methodd/methodd/internal/confperm"
)

const (
	valid   = "version: 1\nmethods:\n  hello:\n    reply: {payload: '\"hi\"'}\n"
	invalid = "version: 1\nmethods:\n  hello:\n    reply: {payload: '{,'}\n"
)

// tree makes dir/etc/handlers.yaml (dir 0755, file 0644) holding content.
func tree(t *testing.T, content string) (dir, path string) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "etc")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(dir, "handlers.yaml")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, path
}

func opts() Options { return Options{DaemonUID: os.Geteuid()} }

func TestLoadValid(t *testing.T) {
	_, path := tree(t, valid)
	l, err := Load(path, opts())
	if err != nil || l.Unsafe != nil || l.Set == nil || string(l.Data) != valid || l.Set.File() != path {
		t.Fatalf("Load = %+v, %v; want the Set of %s, its bytes and no problem", l, err, path)
	}
}

func TestLoadInvalidGivesDiagnostics(t *testing.T) {
	_, path := tree(t, invalid)
	l, err := Load(path, opts())
	var diags engine.Diagnostics
	if !errors.As(err, &diags) || diags[0].File != path || diags[0].Line != 4 || l.Set != nil {
		t.Fatalf("Load = %+v, %v; want engine.Diagnostics at %s:4 and no Set", l, err, path)
	}
}

func TestLoadMissingFile(t *testing.T) {
	l, err := Load(filepath.Join(t.TempDir(), "none.yaml"), opts())
	if !errors.Is(err, fs.ErrNotExist) || l.Set != nil || l.Unsafe != nil {
		t.Fatalf("Load = %+v, %v; want fs.ErrNotExist", l, err)
	}
}

// TestUnsafeIsReportedNotFatal: a group-writable directory and file are
// reported in Unsafe (each path with its fix), and the file is still
// parsed, so that check can show both kinds of problem.
func TestUnsafeIsReportedNotFatal(t *testing.T) {
	dir, path := tree(t, invalid)
	for _, p := range []string{dir, path} {
		if err := os.Chmod(p, 0o775); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(path, 0o664); err != nil {
		t.Fatal(err)
	}
	l, err := Load(path, opts())
	var diags engine.Diagnostics
	if !errors.Is(l.Unsafe, confperm.ErrUnsafe) || !errors.As(err, &diags) {
		t.Fatalf("Load = %+v, %v; want Unsafe and the file's diagnostics", l, err)
	}
	ws := UnsafeWarnings(path, l.Unsafe)
	if len(ws) != 2 {
		t.Fatalf("%d warnings, want one per path at fault (2): %v", len(ws), ws)
	}
	for i, p := range []string{dir, path} {
		w := ws[i]
		if w.File != path || w.Line != 0 || w.Severity != engine.SeverityWarning || !strings.HasPrefix(w.Message, p+" (mode ") ||
			!strings.HasSuffix(w.Message, "(fix: chmod go-w "+p+")") {
			t.Errorf("warning %d = %+v, want a file-level warning naming %s and its fix", i, w, p)
		}
		if got, want := w.String(), path+": warning: "+w.Message; got != want {
			t.Errorf("warning %d reads %q, want %q", i, got, want)
		}
	}
	if UnsafeWarnings(path, nil) != nil {
		t.Error("warnings for a safe file")
	}
}

// TestParseChecksThePathAndParsesTheBytes: Parse takes the bytes given,
// not the file's, and still checks the file's permissions.
func TestParseChecksThePathAndParsesTheBytes(t *testing.T) {
	_, path := tree(t, invalid)
	l, err := Parse(path, []byte(valid), opts())
	if err != nil || l.Set == nil || string(l.Data) != valid {
		t.Fatalf("Parse = %+v, %v; want the given bytes parsed", l, err)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	if l, _ := Parse(path, []byte(valid), opts()); !errors.Is(l.Unsafe, confperm.ErrUnsafe) {
		t.Fatalf("Parse of a world-writable file: Unsafe %v, want confperm.ErrUnsafe", l.Unsafe)
	}
}
