package main

import (
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/methodd/methodd/internal/procstat"
)

// TestRunResourceUsage runs the daemon as its own process against a hub in
// another process and measures, from /proc, its CPU per expression call and
// its RSS idle and with 128 calls in flight (targets: ≤ 15 MB idle, ≤ 40 MB
// loaded).
func TestRunResourceUsage(t *testing.T) {
	if testing.Short() {
		t.Skip("measurement")
	}
	bin := buildMethodd(t)
	dir := t.TempDir()
	hubDir := filepath.Join(dir, "hub")
	hub := exec.Command(bin, "hub", "--dir", hubDir, "--mqtt-addr", "127.0.0.1:0", "--https-addr", "127.0.0.1:0")
	if err := hub.Start(); err != nil {
		t.Fatal(err)
	}
	hubExited := make(chan error, 1)
	go func() { hubExited <- hub.Wait() }()
	t.Cleanup(func() { hub.Process.Signal(syscall.SIGTERM); <-hubExited })
	info := hubSmokeWaitInfo(t, hubDir, hubExited)

	csFile := filepath.Join(dir, "cs")
	os.WriteFile(csFile, []byte(info.Devices["dev-device"]), 0o600)
	cfg := filepath.Join(dir, "handlers.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`version: 1
connection:
  ca_file: %s
defaults: {concurrency: 256, timeout: 30s}
methods:
  hello:
    reply: {payload: '{"hello": payload.name, "time": now()}'}
  hold:
    run: [sleep, "2"]
`, info.CAFile)), 0o600)
	daemon := exec.Command(bin, "run", "--config", cfg, "--connection-string-file", csFile, "--log-level", "warn")
	out := &runSmokeOutput{want: "never", seen: make(chan struct{})}
	daemon.Stderr = out
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- daemon.Wait() }()
	t.Cleanup(func() {
		daemon.Process.Signal(syscall.SIGTERM)
		if err := <-exited; err != nil {
			t.Errorf("daemon exit: %v\n%s", err, out)
		}
	})
	pid := daemon.Process.Pid

	pem, _ := os.ReadFile(info.CAFile)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	call := func(method, payload string) bool {
		code, body := hubSmokePost(t, info.ServiceConnectionString, pool,
			`{"methodName":"`+method+`","payload":`+payload+`,"responseTimeoutInSeconds":30}`)
		return code == 200 && strings.Contains(body, `"status":200`)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !call("hello", `{"name":"warm"}`) {
		if time.Now().After(deadline) {
			t.Fatalf("daemon not answering:\n%s", out)
		}
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
				if !call("hello", `{"name":"x"}`) {
					failed.Store(i, true)
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
			if !call("hold", `null`) {
				failed.Store("hold", true)
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
	failed.Range(func(k, _ any) bool { t.Errorf("call %v failed", k); return true })
	t.Logf("daemon idle: RssAnon %.1f MB (heap, stacks), RssFile %.1f MB (the binary's resident text and rodata)", float64(idleAnon)/1024, float64(idleFile)/1024)
	t.Logf("daemon: idle RSS %.1f MB, after %d expression calls %.1f MB, 128 in flight peak RSS %.1f MB (VmHWM %.1f MB); CPU %.0f µs per expression call (REST→hub→MQTT→daemon→hub, daemon process only)",
		float64(idle)/1024, n, float64(afterExpr)/1024, float64(peak)/1024, float64(hwm)/1024, float64(cpuPerCall.Microseconds()))
	// Issue 4's targets, on the binary as shipped (static, stripped: see
	// shippedBuild), idle meaning settled after the first call. About 10 MB
	// of it is the binary's own resident text and rodata; the start-up heap
	// is handed back to the OS once connected.
	if idle > 15*1024 {
		t.Errorf("idle RSS %d kB, want ≤ 15 MB", idle)
	}
	if hwm > 40*1024 {
		t.Errorf("loaded RSS high-water %d kB, want ≤ 40 MB", hwm)
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
