//go:build linux

package engine

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/methodd/methodd/internal/testkit"
)

// readPID waits for path to hold a pid and returns it.
func readPID(t *testing.T, path string) int {
	t.Helper()
	var pid int
	testkit.Eventually(t, 10*time.Second, "pid file "+path, func() bool {
		b, err := os.ReadFile(path)
		if err != nil {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil && pid > 0
	})
	return pid
}

// gone reports whether pid no longer runs: it does not exist or is a zombie
// waiting for a reaper that is not us (an orphan's parent is init).
func gone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] == 'Z'
}

// TestTimeoutKillsProcessGroup runs a shell that ignores SIGTERM and forks a
// grandchild that ignores it too: after the timeout the group gets SIGTERM,
// then SIGKILL after the grace; the reply is 504 and neither pid survives.
func TestTimeoutKillsProcessGroup(t *testing.T) {
	s, dir := stubbornSet(t, "")
	start := time.Now()
	rep := call(t, s, "stubborn", "")
	elapsed := time.Since(start)
	if rep.Status != 504 || !strings.Contains(string(rep.Payload), "timed out after 300ms") {
		t.Fatalf("got %d %s, want 504 timed out", rep.Status, rep.Payload)
	}
	if elapsed < 500*time.Millisecond || elapsed > 10*time.Second {
		t.Errorf("call took %s; want timeout+grace (~500ms), bounded", elapsed)
	}
	wantGroupGone(t, dir)
}

// stubbornSet is a Set whose method stubborn runs a shell that ignores
// SIGTERM and forks a child that ignores it too, writing both pids into
// the returned directory, with a 300 ms timeout, a 200 ms kill grace and
// the method keys in extra (e.g. "limits: {...}").
func stubbornSet(t *testing.T, extra string) (*Set, string) {
	t.Helper()
	dir := t.TempDir()
	opts := testOptions()
	opts.KillGrace = 200 * time.Millisecond
	return mustParse(t, `
version: 1
methods:
  stubborn:
    shell: 'trap "" TERM; echo $$ > "$DIR/leader"; sleep 100 & echo $! > "$DIR/child"; sleep 100'
    env: {DIR: `+dir+`}
    timeout: 300ms
    `+extra+`
`, opts), dir
}

// wantGroupGone waits until neither pid stubbornSet's method wrote in dir
// is alive.
func wantGroupGone(t *testing.T, dir string) {
	t.Helper()
	for _, name := range []string{"leader", "child"} {
		pid := readPID(t, filepath.Join(dir, name))
		testkit.Eventually(t, 10*time.Second, name+" pid "+strconv.Itoa(pid)+" to be gone", func() bool { return gone(pid) })
	}
}

// TestLeftoversKilledAfterExit: a command that exits leaving a background
// child holding its stdout returns at once (not after the child's 100s), and
// the child is killed with the group.
func TestLeftoversKilledAfterExit(t *testing.T) {
	dir := t.TempDir()
	s := mustParse(t, `
version: 1
methods:
  bg:
    shell: 'sleep 100 & echo $! > "$DIR/child"; echo done'
    env: {DIR: `+dir+`}
`)
	start := time.Now()
	rep := call(t, s, "bg", "")
	if rep.Status != 200 || !strings.Contains(string(rep.Payload), `"stdout":"done\n"`) {
		t.Fatalf("got %d %s", rep.Status, rep.Payload)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("call took %s; a background child must not hold the reply", d)
	}
	pid := readPID(t, filepath.Join(dir, "child"))
	testkit.Eventually(t, 10*time.Second, "background child to be gone", func() bool { return gone(pid) })
}

// TestEscapedProcessDoesNotHangCall: a process that leaves the group (setsid)
// keeps stdout open; the call still returns after DrainTimeout.
func TestEscapedProcessDoesNotHangCall(t *testing.T) {
	if _, err := os.Stat("/usr/bin/setsid"); err != nil {
		t.Skip("setsid not installed")
	}
	dir := t.TempDir()
	opts := testOptions()
	opts.DrainTimeout = 200 * time.Millisecond
	s := mustParse(t, `
version: 1
methods:
  escape:
    shell: 'setsid sh -c "echo \$\$ > \"$DIR/escaped\"; exec sleep 100" & while [ ! -s "$DIR/escaped" ]; do sleep 0.01; done; echo started'
    env: {DIR: `+dir+`}
`, opts)
	start := time.Now()
	rep := call(t, s, "escape", "")
	pid := readPID(t, filepath.Join(dir, "escaped"))
	t.Cleanup(func() { _ = killPID(pid) })
	if rep.Status != 200 {
		t.Fatalf("got %d %s", rep.Status, rep.Payload)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("call took %s; draining must be bounded by DrainTimeout", d)
	}
}

// TestCancelledContextKillsCommand: when the caller's context ends the
// command is killed and the reply is 503.
func TestCancelledContextKillsCommand(t *testing.T) {
	dir := t.TempDir()
	opts := testOptions()
	opts.KillGrace = 100 * time.Millisecond
	s := mustParse(t, `
version: 1
methods:
  slow:
    shell: 'echo $$ > "$DIR/leader"; exec sleep 100'
    env: {DIR: `+dir+`}
`, opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan Reply, 1)
	go func() { done <- s.Call(ctx, Request{Method: "slow"}) }()
	pid := readPID(t, filepath.Join(dir, "leader"))
	cancel()
	select {
	case rep := <-done:
		checkReply(t, rep)
		if rep.Status != 503 {
			t.Errorf("got %d %s, want 503", rep.Status, rep.Payload)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("call did not return after cancel")
	}
	testkit.Eventually(t, 10*time.Second, "command to be gone", func() bool { return gone(pid) })
}

// TestStdinReachesChild: the payload reaches the child's stdin byte for
// byte, below and above what a pipe holds (64 KB), and a child that never
// reads its stdin still finishes.
func TestStdinReachesChild(t *testing.T) {
	r := runner{killGrace: time.Second, drainWait: time.Second}
	// 120 KB: more than a pipe holds, less than stdout's MaxReplyBytes cap.
	for _, n := range []int{0, 1, 4096, 120 << 10} {
		in := make([]byte, n)
		for i := range in {
			in[i] = byte('a' + i%26)
		}
		res, err := r.run(context.Background(), procSpec{path: "/bin/cat", args: []string{"cat"}, stdin: in, timeout: 10 * time.Second})
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if res.exitCode != 0 || string(res.stdout) != string(in) {
			t.Errorf("%d bytes: exit %d, stdout %d bytes, want the %d bytes of stdin", n, res.exitCode, len(res.stdout), n)
		}
		res, err = r.run(context.Background(), procSpec{path: "/bin/true", args: []string{"true"}, stdin: in, timeout: 10 * time.Second})
		if err != nil || res.exitCode != 0 || res.timedOut {
			t.Errorf("%d bytes to a child that does not read: %+v, %v", n, res, err)
		}
	}
}
