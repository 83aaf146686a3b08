package main

import (
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// waitUntil polls cond until it holds or the deadline passes.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
	}
}

// stopWithSIGTERM sends SIGTERM to cmd and fails the test unless the
// process exits 0 (reported on exited) within d.
func stopWithSIGTERM(t *testing.T, cmd *exec.Cmd, exited <-chan error, d time.Duration) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("%s after SIGTERM: %v, want exit 0", cmd.Args[0], err)
		}
	case <-time.After(d):
		t.Fatalf("%s did not exit within %v of SIGTERM", cmd.Args[0], d)
	}
}
