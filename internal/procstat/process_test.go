package procstat

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
)

func TestParseProc(t *testing.T) {
	for _, c := range []struct {
		name, stat string
		want       Proc
	}{
		{"plain", "4242 (methodd) S 1 4242 4242 0 -1 4194560 100 0 0 0 123 45 6 7 20 0 9 0 100 1000 250\n",
			Proc{PID: 4242, PPID: 1, PGID: 4242, State: 'S', Comm: "methodd"}},
		{"spaces and parentheses in the name", "17 (sh (x) ) y) Z 16 15 15 0 -1 0\n",
			Proc{PID: 17, PPID: 16, PGID: 15, State: 'Z', Comm: "sh (x) ) y"}},
		{"empty name", "9 () R 2 9 9", Proc{PID: 9, PPID: 2, PGID: 9, State: 'R', Comm: ""}},
	} {
		got, err := ParseProc([]byte(c.stat))
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if got != c.want {
			t.Errorf("%s: got %+v, want %+v", c.name, got, c.want)
		}
	}
	for _, bad := range []string{"", "4242 methodd S 1 2", "(methodd) S 1 2", "x (methodd) S 1 2", "1 (a) S 1", "1 (a) SS 1 2", "1 (a) S one 2", "1 (a) S 1 two"} {
		if p, err := ParseProc([]byte(bad)); err == nil {
			t.Errorf("ParseProc(%q) = %+v, want an error", bad, p)
		}
	}
}

func TestStrays(t *testing.T) {
	ps := []Proc{
		{PID: 100, PPID: 1, PGID: 100},   // the parent itself
		{PID: 101, PPID: 100, PGID: 100}, // its child
		{PID: 102, PPID: 1, PGID: 150},   // reparented, in a command's group
		{PID: 103, PPID: 1, PGID: 200},   // unrelated
		{PID: 104, PPID: 101, PGID: 100}, // grandchild in the parent's own group, not asked for
	}
	var got []int
	for _, p := range strays(ps, 100, map[int]bool{150: true}) {
		got = append(got, p.PID)
	}
	if want := []int{101, 102}; !slices.Equal(got, want) {
		t.Errorf("strays = %v, want %v", got, want)
	}
}

// TestStraysSeesChild starts a child and finds it among this process's
// strays; once reaped, it is gone.
func TestStraysSeesChild(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	found := func() bool {
		ps, err := Strays(os.Getpid(), nil)
		if err != nil {
			t.Fatal(err)
		}
		return slices.ContainsFunc(ps, func(p Proc) bool { return p.PID == cmd.Process.Pid })
	}
	if !found() {
		t.Errorf("child %d not among the strays", cmd.Process.Pid)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if found() {
		t.Errorf("child %d still a stray after it was reaped", cmd.Process.Pid)
	}
}

func TestReadProcSelf(t *testing.T) {
	p, err := ReadProc(0)
	if err != nil {
		t.Fatal(err)
	}
	if p.PID != os.Getpid() || p.PPID != os.Getppid() {
		t.Errorf("ReadProc(0) = %+v, want pid %d ppid %d", p, os.Getpid(), os.Getppid())
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if base := filepath.Base(exe); p.Comm != base[:min(len(base), 15)] { // the kernel keeps 15 bytes
		t.Errorf("ReadProc(0).Comm = %q, want %q", p.Comm, base)
	}
	if _, err := ReadProc(-1); err == nil {
		t.Error("ReadProc(-1): got nil error")
	}
}

// TestOpenFDs counts one more descriptor while a file is open.
func TestOpenFDs(t *testing.T) {
	before, err := OpenFDs(0)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	during, err := OpenFDs(os.Getpid())
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if during != before+1 {
		t.Errorf("OpenFDs with one more file open = %d, want %d", during, before+1)
	}
}

func TestRSSBytes(t *testing.T) {
	rss, err := RSSBytes(0)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := ReadStatusKB(0, "VmHWM")
	if err != nil {
		t.Fatal(err)
	}
	if rss <= 0 || rss > kb[0]*1024 {
		t.Errorf("RSSBytes(0) = %d, want in (0, VmHWM %d]", rss, kb[0]*1024)
	}
}
