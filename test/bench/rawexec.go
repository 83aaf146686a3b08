package main

import (
	"context"
	"os/exec"
	"sync"
	"sync/atomic"
	"time"
)

// execResult is the plain os/exec loop of /bin/true at one concurrency: the
// reference for device (b).
type execResult struct {
	inflight int
	runs     int // successful, timed
	failed   int
	elapsed  time.Duration
	lat      summary
	childCPU time.Duration // user+sys of the /bin/true processes
}

// rate is successful runs per second.
func (e execResult) rate() float64 {
	if e.elapsed <= 0 {
		return 0
	}
	return float64(e.runs) / e.elapsed.Seconds()
}

// measureExec runs the exec loop at n in flight, with a warm-up like a
// cell's. It runs right before device (b)'s cells at n, so that both see
// the same machine.
func (h *harness) measureExec(ctx context.Context, n int) execResult {
	warm := min(4*n, h.opts.maxCalls)
	execLoop(ctx, n, warm, time.Now().Add(h.opts.duration))
	r := execLoop(ctx, n, h.opts.maxCalls, time.Now().Add(h.opts.duration))
	h.progress("  raw os/exec /bin/true %3d in flight: %6d runs %8.0f/s p50 %s p99 %s", n, r.runs, r.rate(), ms(r.lat.p50), ms(r.lat.p99))
	return r
}

// execLoop runs /bin/true with n workers until maxRuns were started or the
// deadline passed.
func execLoop(ctx context.Context, n, maxRuns int, deadline time.Time) execResult {
	r := execResult{inflight: n}
	var (
		claimed atomic.Int64
		mu      sync.Mutex
		lat     []time.Duration
		wg      sync.WaitGroup
	)
	ctx, cancel := context.WithDeadline(ctx, deadline.Add(cellSlack))
	defer cancel()
	t0 := time.Now()
	for range n {
		wg.Go(func() {
			var mine []time.Duration
			var cpu time.Duration
			failed := 0
			for claimed.Add(1) <= int64(maxRuns) && time.Now().Before(deadline) && ctx.Err() == nil {
				s := time.Now()
				cmd := exec.CommandContext(ctx, "/bin/true")
				if err := cmd.Run(); err != nil {
					failed++
					continue
				}
				mine = append(mine, time.Since(s))
				cpu += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
			}
			mu.Lock()
			defer mu.Unlock()
			lat = append(lat, mine...)
			r.failed += failed
			r.childCPU += cpu
		})
	}
	wg.Wait()
	r.elapsed = time.Since(t0)
	r.runs, r.lat = len(lat), summarize(lat)
	return r
}
