package daemon

import (
	"context"
	"runtime/debug"
	"sync/atomic"
	"time"
)

// defaultGCPercent is the daemon's GOGC unless the environment sets one.
// The daemon's live heap is about 1 MB, so with Go's default of 100 the
// collector runs every 4 MB allocated (the runtime's minimum heap): under
// load that is every few hundred calls, and the collector and the
// scavenger returning and re-faulting the same pages were the largest
// costs per call left (issue 8). At 200 the minimum heap is 8 MB. Measured
// with 16 calls in flight, alternating runs: CPU per call -5 % (100 B),
// -30 % (8 KB), -27 % (100 KB); peak RSS +4, +4 and +6 MB (and up to
// about +50 % with 128 calls of 100 KB in flight: the heap may reach three
// times what calls hold instead of twice). Memory is given back when calls
// stop (trimWhenIdle).
const defaultGCPercent = 200

// idleTrimEvery is how often the daemon looks for the end of a burst of
// calls; memory is returned one to two periods after the last call.
const idleTrimEvery = 10 * time.Second

// defaultMemoryLimit is the daemon's soft memory limit (GOMEMLIMIT) unless
// the environment sets one. Near it the collector runs as often as it
// must, so memory pressure costs CPU instead of growing the heap into the
// unit's MemoryHigh= (384M: reclaim and throttling) and MemoryMax= (512M:
// the kernel's OOM killer) in systemd/methodd.service. Those count the
// commands too, hence the margin. What one call can hold is bounded
// elsewhere: 128 KB payloads and replies, 4 MiB of produced strings and
// arrays and 1 s per expression evaluation (engine/exprcost.go), 128 KB
// per captured output stream; the ~120 KB call of issue 19 that went to
// "fatal error: out of memory" now stops at its 4 MiB budget.
const defaultMemoryLimit = 192 << 20

// setGCPercent applies the daemon's collector policy: defaultGCPercent
// unless GOGC is set, and the soft limit defaultMemoryLimit unless
// GOMEMLIMIT is set (an operator's choice, Environment=... in the unit,
// wins). It returns the function that restores the previous settings.
func setGCPercent(getenv func(string) string) (restore func()) {
	oldPercent, oldLimit := -2, int64(-1)
	if getenv("GOGC") == "" {
		oldPercent = debug.SetGCPercent(defaultGCPercent)
	}
	if getenv("GOMEMLIMIT") == "" {
		oldLimit = debug.SetMemoryLimit(defaultMemoryLimit)
	}
	return func() {
		if oldPercent != -2 {
			debug.SetGCPercent(oldPercent)
		}
		if oldLimit >= 0 {
			debug.SetMemoryLimit(oldLimit)
		}
	}
}

// returnMemory gives the kernel back what the heap does not need now. One
// collection: the engine's pooled reply buffers survive it (sync.Pool keeps
// them for one more cycle) and go at the next, which the runtime forces
// within two minutes even in an idle daemon. A second collection here
// returned them at once; it was removed because it cannot change calls/s
// or CPU per call (it runs when no call is in flight), the bar a
// micro-optimisation has to meet to stay (issue 13).
func returnMemory() { debug.FreeOSMemory() }

// callCounter counts method calls; trimWhenIdle watches it.
type callCounter struct{ n atomic.Uint64 }

func (c *callCounter) add() { c.n.Add(1) }

// trimWhenIdle calls free once after each burst of calls (see idleTrim),
// checking every period, until ctx is done. An idle daemon then holds what
// it needs, not what its last burst needed.
func trimWhenIdle(ctx context.Context, calls *callCounter, period time.Duration, free func()) {
	tick := time.NewTicker(period)
	defer tick.Stop()
	t := idleTrim{last: calls.n.Load()}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if t.step(calls.n.Load()) {
				free()
			}
		}
	}
}

// idleTrim decides, from the call count at each tick, when a burst has
// ended: at the first tick that finds no call since the tick before, when
// there had been calls before that.
type idleTrim struct {
	last uint64 // the count at the previous tick
	busy bool   // calls came since the last trim
}

// step takes the count at this tick and reports whether to free memory.
func (t *idleTrim) step(n uint64) bool {
	switch {
	case n != t.last:
		t.last, t.busy = n, true
	case t.busy:
		t.busy = false
		return true
	}
	return false
}
