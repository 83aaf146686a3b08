//go:build unix

package handlersfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestLoadRefusesWhatIsNotARegularFile: a FIFO, a device (directly and
// through a symlink) and a directory are refused before any read, fast,
// with ErrNotRegular naming what the path is.
func TestLoadRefusesWhatIsNotARegularFile(t *testing.T) {
	dir, _ := tree(t, valid)
	fifo := filepath.Join(dir, "fifo.yaml")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	link := func(name, target string) string {
		p := filepath.Join(dir, name)
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	sub := filepath.Join(dir, "sub.yaml")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, path, want string
	}{
		{"FIFO nobody writes", fifo, "is a FIFO"},
		{"symlink to a FIFO", link("to-fifo.yaml", fifo), "is a FIFO"},
		{"/dev/zero via symlink", link("zero.yaml", "/dev/zero"), "is a character device"},
		{"/dev/null via symlink", link("null.yaml", "/dev/null"), "is a character device"},
		{"/dev/zero", "/dev/zero", "is a character device"},
		{"directory", sub, "is a directory"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			l, err := loadWithin(t, c.path, 3*time.Second)
			if !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), c.want) || l.Set != nil {
				t.Fatalf("Load = %v; want ErrNotRegular saying %q", err, c.want)
			}
			if el := time.Since(start); el > time.Second {
				t.Errorf("refusal took %v, want well under a second", el)
			}
		})
	}
}
