package daemon

import (
	"context"
	"math"
	"runtime/debug"
	"testing"
	"testing/synctest"
	"time"
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

// TestTrimWhenIdleOnTheClock runs the trim loop on the bubble's fake clock:
// memory is returned one to two periods after the last call of a burst,
// once per burst, and never while idle.
func TestTrimWhenIdleOnTheClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const period = 10 * time.Second
		var calls callCounter
		var freedAt []time.Duration
		start := time.Now()
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			trimWhenIdle(ctx, &calls, period, func() { freedAt = append(freedAt, time.Since(start)) })
			close(done)
		}()
		time.Sleep(35 * time.Second) // idle: ticks at 10, 20, 30 free nothing
		for range 3 {                // calls at 35, 45 and 55 s: ticks at 40, 50, 60 see them
			calls.add()
			time.Sleep(10 * time.Second)
		}
		time.Sleep(30 * time.Second) // to 95 s: the tick at 70 finds it quiet and frees; 80, 90 do not
		calls.add()                  // one call at 95 s
		time.Sleep(30 * time.Second) // to 125 s: 100 sees it, 110 frees, 120 does not
		cancel()
		<-done
		want := []time.Duration{70 * time.Second, 110 * time.Second}
		if len(freedAt) != len(want) || freedAt[0] != want[0] || freedAt[1] != want[1] {
			t.Fatalf("memory freed at %v, want %v", freedAt, want)
		}
	})
}

// TestSetGCPercentYieldsToGOGC: the daemon's default applies only when the
// environment sets no GOGC, and the previous setting comes back after.
func TestSetGCPercentYieldsToGOGC(t *testing.T) {
	orig := debug.SetGCPercent(100)
	defer debug.SetGCPercent(orig)
	restore := setGCPercent(func(string) string { return "" })
	if got := debug.SetGCPercent(defaultGCPercent); got != defaultGCPercent {
		t.Errorf("without GOGC the GC percent is %d, want %d", got, defaultGCPercent)
	}
	restore()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("after restore the GC percent is %d, want the previous 100", got)
	}
	restore = setGCPercent(func(k string) string {
		if k == "GOGC" {
			return "100"
		}
		return ""
	})
	defer restore()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("with GOGC=100 the GC percent is %d, want the environment's 100", got)
	}
}

// TestSetGCPercentSetsMemoryLimit: the daemon runs under a soft memory
// limit unless GOMEMLIMIT is set, and the previous limit comes back after.
func TestSetGCPercentSetsMemoryLimit(t *testing.T) {
	orig := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(orig)
	debug.SetMemoryLimit(math.MaxInt64)
	restore := setGCPercent(func(string) string { return "" })
	if got := debug.SetMemoryLimit(-1); got != defaultMemoryLimit {
		t.Errorf("without GOMEMLIMIT the memory limit is %d, want %d", got, defaultMemoryLimit)
	}
	restore()
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("after restore the memory limit is %d, want the previous (none)", got)
	}
	restore = setGCPercent(func(k string) string {
		if k == "GOMEMLIMIT" {
			return "1GiB"
		}
		return ""
	})
	defer restore()
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("with GOMEMLIMIT set the daemon changed the limit to %d", got)
	}
}
