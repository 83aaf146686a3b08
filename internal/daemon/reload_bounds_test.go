//go:build linux

package daemon

import (
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/methodd/methodd/internal/handlersfile"
)

// forceOutcome asks for a reload (SIGHUP) and returns its outcome.
func (h *reloadHarness) forceOutcome() ReloadResult {
	h.t.Helper()
	h.reload <- struct{}{}
	return h.outcome()
}

// TestReloadRefusesWhatCannotBeBoundedAndKeepsServing: the file replaced by
// a FIFO nobody writes to, by a sparse file over the size limit or by an
// alias bomb is rejected without blocking the reloader; the old handlers
// keep serving, a later valid file is applied and the reloader still stops
// when asked (the harness's cleanup waits for it).
func TestReloadRefusesWhatCannotBeBoundedAndKeepsServing(t *testing.T) {
	h := startReloader(t, "", configA)

	if err := os.Remove(h.path); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(h.path, 0o644); err != nil {
		t.Fatal(err)
	}
	if r := h.forceOutcome(); r.Outcome != ReloadRejected || !errors.Is(r.Err, handlersfile.ErrNotRegular) {
		t.Fatalf("FIFO: outcome %v, err %v; want rejected with ErrNotRegular", r.Outcome, r.Err)
	}
	h.expectServing(configA)
	if err := os.Remove(h.path); err != nil {
		t.Fatal(err)
	}

	writeConfig(t, h.path, configA)
	if err := os.Truncate(h.path, 1<<30); err != nil {
		t.Fatal(err)
	}
	if r := h.forceOutcome(); r.Outcome != ReloadRejected || !errors.Is(r.Err, handlersfile.ErrTooLarge) {
		t.Fatalf("1 GiB file: outcome %v, err %v; want rejected with ErrTooLarge", r.Outcome, r.Err)
	}
	h.expectServing(configA)

	bomb := "version: 1\nx-a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
	for i, prev := range []string{"a", "b", "c", "d", "e"} {
		name := string(rune('b' + i))
		bomb += "x-" + name + ": &" + name + " [" + strings.Repeat("*"+prev+", ", 9) + "*" + prev + "]\n"
	}
	writeConfig(t, h.path, bomb+"methods: {}\n")
	if r := h.forceOutcome(); r.Outcome != ReloadRejected || len(r.Diagnostics) != 1 || !strings.Contains(r.Diagnostics[0].Message, "expand to more than 10000 YAML nodes") {
		t.Fatalf("alias bomb: outcome %v, diagnostics %v; want rejected with the alias bound", r.Outcome, r.Diagnostics)
	}
	h.expectServing(configA)

	writeConfig(t, h.path, configB)
	// Checks of the event bursts above may still come in first (the
	// content changed four times); wait for B's.
	for r := h.outcome(); !strings.HasPrefix(r.Active, "4 methods"); r = h.outcome() {
		if r.Outcome == ReloadRefused {
			t.Fatalf("valid file after the refusals: outcome %v (%v), want applied", r.Outcome, r.Err)
		}
	}
	h.expectServing(configB)
}
