package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/methodd/methodd/internal/localhub"
	"github.com/methodd/methodd/internal/testkit"
)

// TestBinarySmoke builds methodd as it ships (static, stripped) and drives
// it as a user would, each process on its own: the README's first command
// (run --local on the example) called by invoke --local; check and call on
// the example; a standalone hub with a daemon and an invoke as three
// processes. Readiness is read from hub.json and from systemd's notify
// protocol (READY=1), never from log text. Subcommands are tested in depth
// in internal/cli; this test proves the binary wires them.
func TestBinarySmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildMethodd(t)
	t.Run("run --local and invoke --local", func(t *testing.T) { smokeRunLocal(t, bin) })
	t.Run("check and call the example", func(t *testing.T) { smokeCheckCall(t, bin) })
	t.Run("hub, run and invoke as three processes", func(t *testing.T) { smokeHub(t, bin) })
}

// smokeRunLocal is the README's two-terminal session.
func smokeRunLocal(t *testing.T, bin string) {
	dir := filepath.Join(t.TempDir(), "hub")
	d := startProcess(t, bin, "run", "--local", "--config", "handlers.yaml.example", "--hub-dir", dir)
	d.waitReady(t)
	// The hint is written before READY=1, but it reaches d.out through a
	// pipe that the notify socket may overtake.
	hint := "call it with: methodd invoke --local --hub-dir " + dir + " dev-device ping\n"
	testkit.Eventually(t, 10*time.Second, "run --local to print how to call it: "+hint, func() bool {
		return strings.Contains(d.out.String(), hint)
	})
	out, errOut, code := runMethodd(t, bin, "", "invoke", "--local", "--hub-dir", dir, "dev-device", "ping", `{"from":"smoke"}`)
	if code != 0 || !strings.Contains(out, `"status":200`) || !strings.Contains(out, `"pong":true`) || !strings.Contains(out, `"echo":{"from":"smoke"}`) {
		t.Errorf("invoke ping: exit %d\n%s%s", code, out, errOut)
	}
	d.stop(t)
	if s := d.out.String(); strings.Contains(s, "SharedAccessKey=") || strings.Contains(s, "sig=") {
		t.Error("methodd run printed a secret")
	}
}

// smokeCheckCall checks and calls the shipped example.
func smokeCheckCall(t *testing.T, bin string) {
	out, errOut, code := runMethodd(t, bin, "", "check", "handlers.yaml.example")
	if code != 0 || !strings.HasPrefix(out, "handlers.yaml.example: OK, 11 methods") || errOut != "" {
		t.Errorf("check: exit %d, stdout %q, stderr %q; want exit 0, OK and no warnings", code, out, errOut)
	}
	out, errOut, code = runMethodd(t, bin, `{"flag": "-s"}`, "call", "--config", "handlers.yaml.example", "kernel", "-")
	if code != 0 || out != "{\"status\":200,\"payload\":{\"flag\":\"-s\",\"output\":\"Linux\"}}\n" {
		t.Errorf("call kernel: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if _, _, code := runMethodd(t, bin, "", "call", "--config", "handlers.yaml.example", "ping", `{"a":`); code != 2 {
		t.Errorf("call with bad JSON: exit %d, want 2", code)
	}
}

// smokeHub runs `methodd hub`, a daemon connected to it with a connection
// string file, and invoke against both a connected and an offline device.
func smokeHub(t *testing.T, bin string) {
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "hub")
	hub := startProcess(t, bin, "hub", "--dir", dir, "--mqtt-addr", "127.0.0.1:0", "--https-addr", "127.0.0.1:0",
		"--device", "gw", "--device", "off", "--log-format", "json")
	var info localhub.Info
	testkit.Eventually(t, 20*time.Second, "hub.json with gw", func() bool {
		var err error
		info, err = localhub.ReadInfo(dir)
		return err == nil && info.Devices["gw"] != ""
	})
	csFile := filepath.Join(tmp, "gw.cs")
	cfg := filepath.Join(tmp, "handlers.yaml")
	writeFile(t, csFile, info.Devices["gw"])
	writeFile(t, cfg, fmt.Sprintf("version: 1\nconnection: {ca_file: %q}\nmethods:\n  echo:\n    reply: {payload: 'payload'}\n", info.CAFile))
	d := startProcess(t, bin, "run", "--config", cfg, "--connection-string-file", csFile)
	d.waitReady(t)

	out, errOut, code := runMethodd(t, bin, `{"from": "stdin"}`, "invoke", "--local", "--hub-dir", dir, "gw", "echo", "-")
	if code != 0 || out != "{\"status\":200,\"payload\":{\"from\":\"stdin\"}}\n" {
		t.Errorf("invoke gw: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if _, errOut, code := runMethodd(t, bin, "", "invoke", "--local", "--hub-dir", dir, "off", "echo"); code != 3 || !strings.Contains(errOut, "404103") {
		t.Errorf("invoke off: exit %d, stderr %q; want 3 naming 404103", code, errOut)
	}
	d.stop(t)
	hub.stop(t)
	for _, p := range []*process{d, hub} {
		if s := p.out.String(); strings.Contains(s, "sig=") || strings.Contains(s, "SharedAccessKey=") {
			t.Errorf("%s printed a secret", p.name)
		}
	}
}

// process is a methodd process under test, with NOTIFY_SOCKET set so that
// its readiness is read as systemd reads it.
type process struct {
	name   string
	cmd    *exec.Cmd
	out    *testkit.SyncBuffer // stdout and stderr
	notify *testkit.NotifySocket
	exited chan error
}

// startProcess starts bin with args; the test's cleanup kills it if it is
// still running and shows its output if the test failed.
func startProcess(t *testing.T, bin string, args ...string) *process {
	t.Helper()
	p := &process{name: "methodd " + args[0], cmd: exec.Command(bin, args...), out: &testkit.SyncBuffer{},
		notify: testkit.ListenNotify(t), exited: make(chan error, 1)}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.Env = append(os.Environ(), p.notify.Env())
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		if t.Failed() {
			t.Logf("%s output:\n%s", p.name, p.out)
		}
	})
	return p
}

// waitReady waits for the READY=1 notification.
func (p *process) waitReady(t *testing.T) { p.notify.WaitReady(t, 30*time.Second) }

// stop sends SIGTERM and fails the test unless the process exits 0 within
// 20 s.
func (p *process) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.exited:
		if err != nil {
			t.Fatalf("%s after SIGTERM: %v, want exit 0", p.name, err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("%s did not exit within 20 s of SIGTERM", p.name)
	}
}

// runMethodd runs the binary to completion and returns stdout, stderr and
// the exit code.
func runMethodd(t *testing.T, bin, stdin string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %v: %v", args, err)
	}
	return out.String(), errOut.String(), code
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// buildMethodd builds methodd as it ships (README "Install": static,
// stripped) into the test's temporary directory.
func buildMethodd(t *testing.T) string { return buildMethoddIn(t, ".") }

// buildMethoddIn builds the module in src as scripts/package.sh does
// (static, stripped, without HTTP/2, stamped with the VCS revision when src
// is a checkout: -buildvcs=auto overrides a GOFLAGS=-buildvcs=false).
func buildMethoddIn(t *testing.T, src string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "methodd")
	cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=auto", "-tags", "nethttpomithttp2", "-ldflags=-s -w", "-o", bin, ".")
	cmd.Dir, cmd.Env = src, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

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
	bin := buildMethoddIn(t, dir)
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
