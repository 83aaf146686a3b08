package main

import (
	"context"
	"fmt"
	"time"

	"github.com/methodd/methodd/internal/procstat"
)

// cellSpec is one point of the matrix.
type cellSpec struct {
	path     string // pathMQTT or pathREST
	inflight int
	size     int // payload bytes
}

// cellResult is what one cell measured. CPU and memory are the device
// process's.
type cellResult struct {
	cellSpec
	calls, lost, mismatched int // warm-up included
	measured                int // calls in the timed part
	elapsed                 time.Duration
	lat                     summary
	cpu, childCPU           time.Duration // utime+stime of the device, of its reaped children
	rss                     memory        // after the cell; peak is the cell's own when peakReset
	peakReset               bool
	firstErr                string
}

// rate is replied calls per second in the timed part.
func (c cellResult) rate() float64 {
	if c.elapsed <= 0 {
		return 0
	}
	return float64(c.lat.n) / c.elapsed.Seconds()
}

// cpuPerCall is device CPU per measured call.
func (c cellResult) cpuPerCall() time.Duration {
	if c.measured == 0 {
		return 0
	}
	return c.cpu / time.Duration(c.measured)
}

// line is the cell on one progress line.
func (c cellResult) line() string {
	return fmt.Sprintf("%-4s %3d in flight %7s: %6d calls %8.0f/s p50 %s p99 %s cpu %s/call lost %d mismatched %d",
		c.path, c.inflight, sizeName(c.size), c.lat.n, c.rate(), ms(c.lat.p50), ms(c.lat.p99), us(c.cpuPerCall()), c.lost, c.mismatched)
}

// runCell warms up (connections, caches, the device's pools) and then
// measures one cell against device p.
func (h *harness) runCell(ctx context.Context, p *proc, device string, spec cellSpec) cellResult {
	r := cellResult{cellSpec: spec}
	maker, err := newPayloadMaker(&h.ids, spec.size)
	if err != nil {
		r.firstErr, r.lost = err.Error(), 1
		return r
	}
	ctx, cancel := context.WithTimeout(ctx, 2*h.opts.duration+2*cellSlack)
	defer cancel()
	load := loadSpec{caller: h.callerFor(spec.path), device: device, inflight: spec.inflight, maker: maker}
	load.maxCalls = min(4*spec.inflight, h.opts.maxCalls)
	load.deadline = time.Now().Add(h.opts.duration)
	warm := runLoad(ctx, load)
	r.add(warm)

	r.peakReset = procstat.ResetPeak(p.pid())
	cpu0, err0 := procstat.ReadCPU(p.pid())
	load.maxCalls = h.opts.maxCalls
	t0 := time.Now()
	load.deadline = t0.Add(h.opts.duration)
	m := runLoad(ctx, load)
	r.elapsed = time.Since(t0)
	cpu1, err1 := procstat.ReadCPU(p.pid())
	mem, err2 := readMemory(p.pid())
	r.add(m)
	r.measured, r.lat = m.calls, summarize(m.lat)
	if err := firstError(err0, err1, err2); err != nil {
		r.firstErr = fmt.Sprintf("reading /proc of the device: %v", err)
		r.lost++
		return r
	}
	r.cpu, r.childCPU, r.rss = cpu1.Self-cpu0.Self, cpu1.Children-cpu0.Children, mem
	return r
}

// add counts a burst's calls and failures into the cell.
func (c *cellResult) add(l loadResult) {
	c.calls += l.calls
	c.lost += l.lost
	c.mismatched += l.mismatched
	if c.firstErr == "" {
		c.firstErr = l.firstErr
	}
}

// firstError returns the first non-nil error.
func firstError(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// sizeName is a payload size as the report writes it.
func sizeName(n int) string {
	switch {
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KB", n>>10)
	default:
		return fmt.Sprintf("%d B", n)
	}
}

// ms formats d in milliseconds.
func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

// us formats d in microseconds.
func us(d time.Duration) string { return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond)) }

// mb formats bytes in MB (10^6).
func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }
