package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/methodd/methodd/internal/localhub"
	"github.com/methodd/methodd/internal/procstat"
	"github.com/methodd/methodd/internal/testkit"
	"github.com/methodd/methodd/iothub"
)

// TestRunResourceUsage runs the daemon as its own process against a hub in
// another process and measures, from /proc, its CPU per expression call and
// its RSS idle and with 128 calls in flight (targets: ≤ 15 MB idle, ≤ 40 MB
// loaded).
func TestRunResourceUsage(t *testing.T) {
	if testing.Short() {
		t.Skip("measurement")
	}
	bin := buildShipped(t)
	dir := t.TempDir()
	hubDir := filepath.Join(dir, "hub")
	hub := startChild(t, "methodd hub", exec.Command(bin, "hub", "--dir", hubDir, "--mqtt-addr", "127.0.0.1:0", "--https-addr", "127.0.0.1:0"))
	info := waitHubInfo(t, hubDir, hub)

	csFile := filepath.Join(dir, "cs")
	writeFile(t, csFile, info.Devices["dev-device"])
	cfg := filepath.Join(dir, "handlers.yaml")
	writeFile(t, cfg, fmt.Sprintf(`version: 1
connection:
  ca_file: %s
defaults: {concurrency: 256, timeout: 30s}
methods:
  hello:
    reply: {payload: '{"hello": payload.name, "time": now()}'}
  hold:
    run: [sleep, "2"]
`, info.CAFile))
	notify, err := listenNotify()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { notify.Close() }) // after the daemon has stopped: cleanups run last-in first-out
	cmd := exec.Command(bin, "run", "--config", cfg, "--connection-string-file", csFile, "--log-level", "warn")
	cmd.Env = append(os.Environ(), notify.env())
	daemon := startChild(t, "methodd run", cmd)
	select {
	case <-notify.ready:
	case <-daemon.exited:
		t.Fatalf("methodd run exited before READY=1: %v\n%s", daemon.err, daemon.out)
	case <-time.After(readyTimeout):
		t.Fatalf("no READY=1 from methodd run within %v:\n%s", readyTimeout, daemon.out)
	}
	pid := daemon.cmd.Process.Pid

	post := newServicePoster(t, info.ServiceConnectionString, testkit.CertPool(t, info.CAFile))
	call := func(method, payload string) error {
		return post(`{"methodName":"` + method + `","payload":` + payload + `,"responseTimeoutInSeconds":30}`)
	}
	if err := call("hello", `{"name":"warm"}`); err != nil {
		t.Fatalf("the first call after READY=1: %v\n%s", err, daemon.out)
	}
	idle := settledKB(t, pid, "VmRSS")
	idleAnon, idleFile := procKB(t, pid, "RssAnon"), procKB(t, pid, "RssFile")

	const n = 2000
	cpu0 := procCPU(t, pid)
	var wg sync.WaitGroup
	var failed sync.Map
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < n; i += 8 {
				if err := call("hello", `{"name":"x"}`); err != nil {
					failed.Store(i, err)
				}
			}
		})
	}
	wg.Wait()
	cpuPerCall := (procCPU(t, pid) - cpu0) / n
	afterExpr := procKB(t, pid, "VmRSS")

	// 128 calls in flight: each holds a running command for 2 s.
	peak := 0
	for range 128 {
		wg.Go(func() {
			if err := call("hold", `null`); err != nil {
				failed.Store("hold", err)
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for sampling := true; sampling; {
		peak = max(peak, procKB(t, pid, "VmRSS"))
		select {
		case <-done:
			sampling = false
		case <-time.After(50 * time.Millisecond): // sampling interval, not synchronisation
		}
	}
	hwm := procKB(t, pid, "VmHWM")
	failed.Range(func(k, err any) bool { t.Errorf("call %v failed: %v", k, err); return true })
	t.Logf("daemon idle: RssAnon %.1f MB (heap, stacks), RssFile %.1f MB (the binary's resident text and rodata)", float64(idleAnon)/1024, float64(idleFile)/1024)
	t.Logf("daemon: idle RSS %.1f MB, after %d expression calls %.1f MB, 128 in flight peak RSS %.1f MB (VmHWM %.1f MB); CPU %.0f µs per expression call (REST→hub→MQTT→daemon→hub, daemon process only)",
		float64(idle)/1024, n, float64(afterExpr)/1024, float64(peak)/1024, float64(hwm)/1024, float64(cpuPerCall.Microseconds()))
	// Issue 4's targets, on the binary as shipped (static, stripped: see
	// goBuild), idle meaning settled after the first call. About 10 MB of
	// it is the binary's own resident text and rodata; the start-up heap is
	// handed back to the OS once connected.
	if idle > 15*1024 {
		t.Errorf("idle RSS %d kB, want ≤ 15 MB", idle)
	}
	if hwm > 40*1024 {
		t.Errorf("loaded RSS high-water %d kB, want ≤ 40 MB", hwm)
	}
}

// buildShipped builds methodd into a temporary directory as it ships
// (goBuild) and returns its path.
func buildShipped(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root, err := findRoot(wd)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	bin := filepath.Join(t.TempDir(), "methodd")
	if err := goBuild(ctx, root, bin, false); err != nil {
		t.Fatal(err)
	}
	return bin
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// child is a process the test started; its output is kept for messages.
type child struct {
	name   string
	cmd    *exec.Cmd
	out    *testkit.SyncBuffer
	exited chan struct{} // closed after Wait returned
	err    error         // Wait's result, set before exited is closed
}

// startChild starts cmd with its output going to the child's buffer; the
// test's cleanup stops it (stop).
func startChild(t *testing.T, name string, cmd *exec.Cmd) *child {
	t.Helper()
	c := &child{name: name, cmd: cmd, out: &testkit.SyncBuffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = c.out, c.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { // ends when the process has exited and its output is copied
		c.err = cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(func() { c.stop(t) })
	return c
}

// stop sends SIGTERM and waits for the exit, at most stopGrace before
// SIGKILL. Any exit but a clean one fails the test.
func (c *child) stop(t *testing.T) {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(stopGrace):
		_ = c.cmd.Process.Kill()
		<-c.exited
		t.Errorf("%s still running %v after SIGTERM; killed\n%s", c.name, stopGrace, c.out)
		return
	}
	if c.err != nil {
		t.Errorf("%s exit: %v\n%s", c.name, c.err, c.out)
	}
}

// waitHubInfo waits for the hub's hub.json in dir, with dev-device
// registered: the hub writes it once it listens.
func waitHubInfo(t *testing.T, dir string, hub *child) localhub.Info {
	t.Helper()
	var info localhub.Info
	testkit.Eventually(t, 20*time.Second, "hub.json with dev-device in "+dir, func() bool {
		select {
		case <-hub.exited:
			t.Fatalf("methodd hub exited early: %v\n%s", hub.err, hub.out)
		default:
		}
		i, err := localhub.ReadInfo(dir)
		if err != nil || i.Devices["dev-device"] == "" {
			return false
		}
		info = i
		return true
	})
	return info
}

// newServicePoster returns a function that POSTs a method request body
// for dev-device to the hub's REST API with a service SAS, each on a new
// HTTPS connection, and returns nil when the hub answered 200 with a
// device status of 200.
func newServicePoster(t *testing.T, serviceCS string, pool *x509.CertPool) func(body string) error {
	t.Helper()
	cs, err := iothub.ParseServiceConnectionString(serviceCS)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := iothub.Sign(cs.HostName, cs.SharedAccessKey, cs.SharedAccessKeyName, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	url := "https://" + cs.HostName + iothub.MethodsPath("dev-device", "") + "?" + iothub.MethodsQuery
	return func(body string) error {
		req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", tok)
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 30 * time.Second}
		defer client.CloseIdleConnections()
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("HTTP %d: %s", resp.StatusCode, b)
		}
		if status, _, err := parseResult(b); err != nil || status != 200 {
			return errors.Join(fmt.Errorf("device status %d: %s", status, b), err)
		}
		return nil
	}
}

// procKB reads a kB field of /proc/PID/status.
func procKB(t *testing.T, pid int, field string) int {
	t.Helper()
	kb, err := procstat.ReadStatusKB(pid, field)
	if err != nil {
		t.Fatal(err)
	}
	return int(kb[0])
}

// settledKB is the idle value of a /proc/PID/status field: sampled every
// 250 ms until it has not changed for 1 s (Go's background scavenger returns
// the first call's garbage within a couple of seconds), at most 10 s. This
// is a measurement window, not synchronisation: idle means nothing happens.
func settledKB(t *testing.T, pid int, field string) int {
	t.Helper()
	v, same := procKB(t, pid, field), 0
	for deadline := time.Now().Add(10 * time.Second); same < 4 && time.Now().Before(deadline); {
		time.Sleep(250 * time.Millisecond) // sampling interval
		if n := procKB(t, pid, field); n == v {
			same++
		} else {
			v, same = n, 0
		}
	}
	return v
}

// procCPU is the user+system CPU time of pid.
func procCPU(t *testing.T, pid int) time.Duration {
	t.Helper()
	c, err := procstat.ReadCPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	return c.Self
}
