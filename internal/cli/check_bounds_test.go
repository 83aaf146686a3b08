//go:build unix

package cli

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCheckAndCallRefuseUnboundedFiles: check and call load by the one load
// path, so both refuse a FIFO nobody writes to, /dev/zero behind a symlink
// and an alias bomb, quickly and with the same words.
func TestCheckAndCallRefuseUnboundedFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.yaml")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	zero := filepath.Join(dir, "zero.yaml")
	if err := os.Symlink("/dev/zero", zero); err != nil {
		t.Fatal(err)
	}
	bomb := filepath.Join(dir, "bomb.yaml")
	src := "version: 1\nx-a: &a {reply: {payload: '1'}}\n"
	for i, prev := range []string{"a", "b", "c", "d", "e", "f"} {
		name := string(rune('b' + i))
		src += "x-" + name + ": &" + name + " {<<: [" + strings.Repeat("*"+prev+", ", 9) + "*" + prev + "]}\n"
	}
	if err := os.WriteFile(bomb, []byte(src+"methods: {m: *g}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bombDiag := bomb + ":6:15: x-e.<<[0]: alias *d: aliases and merge keys expand to more than 10000 YAML nodes"
	cases := []struct {
		name, path, want string
	}{
		{"FIFO", fifo, "not a regular file: it is a FIFO"},
		{"/dev/zero via symlink", zero, "not a regular file: it is a character device"},
		{"alias bomb", bomb, bombDiag},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			out, errOut, code := runCLI(t, "", "check", c.path)
			if code != 1 || !strings.Contains(out+errOut, c.want) {
				t.Errorf("check: exit %d, stdout %q, stderr %q; want exit 1 and %q", code, out, errOut, c.want)
			}
			out, errOut, code = runCLI(t, "", "call", "--config", c.path, "m")
			if code != 2 || !strings.Contains(errOut, c.want) {
				t.Errorf("call: exit %d, stdout %q, stderr %q; want exit 2 and %q", code, out, errOut, c.want)
			}
			if el := time.Since(start); el > 2*time.Second {
				t.Errorf("check and call took %v, want well under a second each", el)
			}
		})
	}
}
