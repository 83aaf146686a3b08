package main

import (
	"runtime/debug"
	"testing"
)

// TestIdleTrimFreesOnceAfterEachBurst: nothing is freed while idle from the
// start or while calls keep coming; memory is freed at the first quiet tick
// after a burst, and only once per burst.
func TestIdleTrimFreesOnceAfterEachBurst(t *testing.T) {
	var tr idleTrim
	for i, c := range []struct {
		count uint64
		free  bool
	}{
		{0, false},  // idle since start
		{0, false},  // still idle
		{5, false},  // a burst begins
		{90, false}, // goes on
		{90, true},  // quiet: the burst ended
		{90, false}, // stays quiet: freed already
		{91, false}, // one call
		{91, true},  // quiet again
		{91, false},
	} {
		if got := tr.step(c.count); got != c.free {
			t.Fatalf("tick %d (count %d): free = %v, want %v", i, c.count, got, c.free)
		}
	}
}

// TestSetGCPercentYieldsToGOGC: the daemon's default applies only when the
// environment sets no GOGC.
func TestSetGCPercentYieldsToGOGC(t *testing.T) {
	orig := debug.SetGCPercent(100)
	defer debug.SetGCPercent(orig)
	setGCPercent(func(string) string { return "" })
	if got := debug.SetGCPercent(100); got != defaultGCPercent {
		t.Errorf("without GOGC the GC percent is %d, want %d", got, defaultGCPercent)
	}
	setGCPercent(func(k string) string {
		if k == "GOGC" {
			return "100"
		}
		return ""
	})
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("with GOGC=100 the GC percent is %d, want the environment's 100", got)
	}
}
