//go:build linux

package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/methodd/methodd/engine"
	"github.com/methodd/methodd/internal/handlersfile"
	"github.com/methodd/methodd/internal/testkit"
)

// detachYAML is a detach method whose command records its pid, waits for
// DIR/go (which the test creates only once it holds the reply) and then
// writes DIR/done.
const detachYAML = `version: 1
methods:
  later:
    detach: true
    shell: |
      d='%s'
      echo $$ > "$d/pid.tmp" && mv "$d/pid.tmp" "$d/pid"
      while [ ! -e "$d/go" ]; do sleep 0.02; done
      echo done > "$d/done.tmp" && mv "$d/done.tmp" "$d/done"
`

// detachRunStoppable is e2eRun with a stop that ends the daemon as SIGTERM
// does (its context ends) and waits for Run to return nil.
func detachRunStoppable(t *testing.T, yaml string, hub *e2eHub) (st *e2eStates, stop func()) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "handlers.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	opts := handlersfile.Options{DaemonUID: os.Geteuid(), Engine: engine.Options{}}
	l, err := handlersfile.Load(path, opts)
	if err != nil || l.Unsafe != nil {
		t.Fatalf("load %s: %v %v", path, err, l.Unsafe)
	}
	st = e2eNewStates()
	cfg := Config{Path: path, Loaded: l, Load: opts, Device: hub.device(t, "gw"), OnState: st.record, OnReady: st.onReady}
	stop = testkit.Background(t, "Run", func(ctx context.Context) error { return Run(ctx, cfg) })
	return st, stop
}

// TestEndToEndDetachOutlivesTheDaemon: a detach method's caller gets 202
// "scheduled" while the command is still waiting for a file the test
// creates only after it holds the reply; the command runs in a session of
// its own and, once the daemon has stopped, it is still running and then
// finishes.
func TestEndToEndDetachOutlivesTheDaemon(t *testing.T) {
	dir := t.TempDir()
	pidFile, goFile, doneFile := filepath.Join(dir, "pid"), filepath.Join(dir, "go"), filepath.Join(dir, "done")
	t.Cleanup(func() {
		_ = os.WriteFile(goFile, nil, 0o600)
		if pid := readPID(pidFile); pid > 1 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	hub := e2eStartHub(t, false, "gw")
	st, stop := detachRunStoppable(t, fmt.Sprintf(detachYAML, dir), hub)
	st.waitReady(t, 20*time.Second)

	res, err := hub.rest(t, "gw", "", "later", `{"at":"now"}`)
	if err != nil {
		t.Fatalf("invoke later: %v", err)
	}
	var body struct{ Status, Method string }
	if json.Unmarshal(res.Payload, &body) != nil || res.Status != 202 || body.Status != "scheduled" || body.Method != "later" {
		t.Fatalf("got %d %s, want 202 {\"status\":\"scheduled\",\"method\":\"later\"}", res.Status, res.Payload)
	}
	testkit.Eventually(t, 10*time.Second, "the detached command to start", func() bool { return readPID(pidFile) > 0 })
	pid := readPID(pidFile)
	if sid := procField(pid, 3); sid != strconv.Itoa(pid) {
		t.Errorf("command %d: session %s, want a session of its own", pid, sid)
	}

	stop()
	if !running(pid) {
		t.Fatalf("command %d did not survive the daemon's shutdown", pid)
	}
	if _, err := os.Stat(doneFile); err == nil {
		t.Fatal("the command finished before it was let go: the reply cannot have preceded it")
	}
	if err := os.WriteFile(goFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "the detached command to finish after the daemon stopped", func() bool {
		_, err := os.Stat(doneFile)
		return err == nil
	})
}

// readPID reads a pid file; 0 when it is missing or incomplete.
func readPID(file string) int {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// procField is field i of /proc/PID/stat counted from the state (0: state,
// 2: process group, 3: session); "" when pid is gone.
func procField(pid, i int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if i >= len(f) {
		return ""
	}
	return f[i]
}

// running reports whether pid is alive and not a zombie.
func running(pid int) bool {
	st := procField(pid, 0)
	return st != "" && st != "Z"
}

// TestBinaryDetachSurvivesSIGTERM drives the built binary as systemd-less
// hosts run it: `methodd run` in a process group of its own, called
// through the hub; then SIGTERM goes to the daemon's whole process group
// (as a terminal's Ctrl-C or `kill -- -PGID` does). The daemon exits 0;
// the detached command, in a session of its own, is not hit and finishes
// once let go.
func TestBinaryDetachSurvivesSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "methodd")
	build := exec.Command("go", "build", "-o", bin, "github.com/methodd/methodd")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	pidFile, goFile, doneFile := filepath.Join(tmp, "pid"), filepath.Join(tmp, "go"), filepath.Join(tmp, "done")
	t.Cleanup(func() {
		_ = os.WriteFile(goFile, nil, 0o600)
		if pid := readPID(pidFile); pid > 1 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	hub := e2eStartHub(t, false, "gw")
	cs, cfg := filepath.Join(tmp, "gw.cs"), filepath.Join(tmp, "handlers.yaml")
	yaml := strings.Replace(fmt.Sprintf(detachYAML, tmp), "version: 1\n", fmt.Sprintf("version: 1\nconnection: {ca_file: %q}\n", hub.info.CAFile), 1)
	for file, content := range map[string]string{cs: hub.info.Devices["gw"], cfg: yaml} {
		if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ns := testkit.ListenNotify(t)
	out := &testkit.SyncBuffer{}
	d := exec.Command(bin, "run", "--config", cfg, "--connection-string-file", cs)
	d.Stdout, d.Stderr = out, out
	d.Env = append(os.Environ(), ns.Env())
	d.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- d.Wait() }()
	t.Cleanup(func() {
		_ = d.Process.Kill()
		if t.Failed() {
			t.Logf("methodd run output:\n%s", out)
		}
	})
	ns.WaitReady(t, 30*time.Second)

	res, err := hub.rest(t, "gw", "", "later", `null`)
	if err != nil || res.Status != 202 {
		t.Fatalf("invoke later: %v %d %s, want 202 scheduled", err, res.Status, res.Payload)
	}
	testkit.Eventually(t, 10*time.Second, "the detached command to start", func() bool { return readPID(pidFile) > 0 })
	pid := readPID(pidFile)

	if err := syscall.Kill(-d.Process.Pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("methodd run after SIGTERM: %v, want exit 0", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("methodd run did not exit within 20s of SIGTERM")
	}
	if !running(pid) {
		t.Fatalf("detached command %d did not survive SIGTERM to the daemon's process group", pid)
	}
	if err := os.WriteFile(goFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "the detached command to finish after the daemon exited", func() bool {
		_, err := os.Stat(doneFile)
		return err == nil
	})
}
