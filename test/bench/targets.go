package main

import (
	"fmt"
	"time"
)

// Verdicts of a target.
const (
	verdictMet    = "met"
	verdictMissed = "**missed**"
	verdictAbsent = "not measured"
)

// target is one of issue 8's targets with what the run measured.
type target struct {
	name, measured, verdict string
}

// find returns the cell of device key at (path, inflight, size).
func (r result) find(key string, spec cellSpec) (cellResult, bool) {
	for _, d := range r.devices {
		if d.kind.key != key {
			continue
		}
		for _, c := range d.cells {
			if c.cellSpec == spec && c.lat.n > 0 {
				return c, true
			}
		}
	}
	return cellResult{}, false
}

// device returns the result of device key.
func (r result) device(key string) (deviceResult, bool) {
	for _, d := range r.devices {
		if d.kind.key == key {
			return d, true
		}
	}
	return deviceResult{}, false
}

// ratioTarget compares devices x and y at one cell: x's value / y's ≥ (or
// ≤) bound.
func (r result) ratioTarget(name string, x, y string, spec cellSpec, value func(cellResult) float64, bound float64, atLeast bool) target {
	t := target{name: name, verdict: verdictAbsent, measured: "—"}
	cx, okx := r.find(x, spec)
	cy, oky := r.find(y, spec)
	if !okx || !oky || value(cy) == 0 {
		return t
	}
	ratio := value(cx) / value(cy)
	t.measured = fmt.Sprintf("%.2f× (%s: %s, %s: %s)", ratio, x, fmtValue(value(cx)), y, fmtValue(value(cy)))
	ok := ratio >= bound
	if !atLeast {
		ok = ratio <= bound
	}
	t.verdict = verdictOf(ok)
	return t
}

func fmtValue(v float64) string {
	if v >= 100 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.3g", v)
}

func verdictOf(ok bool) string {
	if ok {
		return verdictMet
	}
	return verdictMissed
}

// targets evaluates issue 8's targets.
func (r result) targets(o options) []target {
	rate := func(c cellResult) float64 { return c.rate() }
	p50 := func(c cellResult) float64 { return float64(c.lat.p50) / float64(time.Millisecond) }
	var ts []target
	for _, size := range o.sizes {
		spec := cellSpec{path: pathMQTT, inflight: 16, size: size}
		ts = append(ts,
			r.ratioTarget(fmt.Sprintf("(a) ≥ 0.9 × (c) calls/s, MQTT, 16 in flight, %s", sizeName(size)), "a", "c", spec, rate, 0.9, true),
			r.ratioTarget(fmt.Sprintf("(a) p50 ≤ 1.15 × (c) p50 (ms), MQTT, 16 in flight, %s", sizeName(size)), "a", "c", spec, p50, 1.15, false),
			r.ratioTarget(fmt.Sprintf("(a) ≥ 3 × (d) calls/s, MQTT, 16 in flight, %s", sizeName(size)), "a", "d", spec, rate, 3, true))
	}
	for _, n := range o.inflights {
		ts = append(ts, r.execTarget(n))
	}
	ts = append(ts, r.idleTarget(), r.peakTarget(), r.reloadTarget(), r.startupTarget())
	return ts
}

// execTarget: (b) ≥ 0.8 × raw os/exec rate at n in flight (MQTT, 100 B).
func (r result) execTarget(n int) target {
	t := target{name: fmt.Sprintf("(b) ≥ 0.8 × raw os/exec rate, %d in flight (MQTT, 100 B)", n), verdict: verdictAbsent, measured: "—"}
	b, ok := r.find("b", cellSpec{path: pathMQTT, inflight: n, size: 100})
	for _, e := range r.exec {
		if ok && e.inflight == n && e.rate() > 0 {
			ratio := b.rate() / e.rate()
			t.measured = fmt.Sprintf("%.2f× (b: %.0f/s, os/exec: %.0f/s)", ratio, b.rate(), e.rate())
			t.verdict = verdictOf(ratio >= 0.8)
		}
	}
	return t
}

// Memory bounds of device (a).
const (
	idleRSSBound = 15e6
	peakRSSBound = 40e6
)

func (r result) idleTarget() target {
	t := target{name: fmt.Sprintf("RSS of (a) idle ≤ 15 MB (VmRSS %v after subscribed; MB = 10⁶ bytes)", idleWindow), verdict: verdictAbsent, measured: "—"}
	if a, ok := r.device("a"); ok && a.idle.rss > 0 {
		t.measured = fmt.Sprintf("%s (%.2f× the bound)", mb(a.idle.rss), float64(a.idle.rss)/idleRSSBound)
		t.verdict = verdictOf(a.idle.rss <= idleRSSBound)
	}
	return t
}

func (r result) peakTarget() target {
	t := target{name: "RSS of (a) ≤ 40 MB at 128 in flight, 8 KB", verdict: verdictAbsent, measured: "— (not in this matrix)"}
	var peak int64
	for _, path := range []string{pathMQTT, pathREST} {
		if c, ok := r.find("a", cellSpec{path: path, inflight: 128, size: 8 << 10}); ok {
			peak = max(peak, c.rss.peak)
		}
	}
	if peak > 0 {
		t.measured = fmt.Sprintf("%s peak over both paths (%.2f× the bound)", mb(peak), float64(peak)/peakRSSBound)
		t.verdict = verdictOf(peak <= peakRSSBound)
	}
	return t
}

func (r result) reloadTarget() target {
	t := target{name: "reload latency p99 ≤ 500 ms", verdict: verdictAbsent, measured: "—"}
	if r.reload.lat.n > 0 {
		t.measured = fmt.Sprintf("p99 %s, p50 %s over %d reloads (%.2f× the bound)", ms(r.reload.lat.p99), ms(r.reload.lat.p50), r.reload.lat.n,
			float64(r.reload.lat.p99)/float64(500*time.Millisecond))
		t.verdict = verdictOf(r.reload.lat.p99 <= 500*time.Millisecond && r.reload.missed == 0)
		if r.reload.missed > 0 {
			t.measured += fmt.Sprintf("; %d reloads not observed within %v", r.reload.missed, reloadWait)
		}
	}
	return t
}

func (r result) startupTarget() target {
	t := target{name: "start-up to subscribed ≤ 300 ms (p99)", verdict: verdictAbsent, measured: "—"}
	if s := r.startup.lat; s.n > 0 {
		t.measured = fmt.Sprintf("p99 %s, p50 %s over %d starts (%.2f× the bound)", ms(s.p99), ms(s.p50), s.n, float64(s.p99)/float64(300*time.Millisecond))
		t.verdict = verdictOf(s.p99 <= 300*time.Millisecond)
	}
	return t
}

// failures lists what makes the run fail: lost or mismatched replies and
// devices that failed.
func (r result) failures() []string {
	var bad []string
	for _, d := range r.devices {
		if d.err != nil {
			bad = append(bad, fmt.Sprintf("device %s: %v", d.kind.key, d.err))
		}
		for _, c := range d.cells {
			if c.lost+c.mismatched > 0 {
				bad = append(bad, fmt.Sprintf("device %s, %s: %d lost, %d mismatched; first: %s", d.kind.key, c.line(), c.lost, c.mismatched, c.firstErr))
			}
		}
	}
	for _, e := range r.exec {
		if e.failed > 0 {
			bad = append(bad, fmt.Sprintf("os/exec of /bin/true failed %d times", e.failed))
		}
	}
	if r.reload.err != nil || r.reload.lost > 0 {
		bad = append(bad, fmt.Sprintf("reload: %v; %d probe calls lost (%s)", r.reload.err, r.reload.lost, r.reload.firstErr))
	}
	if r.startup.err != nil || r.startup.lost > 0 {
		bad = append(bad, fmt.Sprintf("start-up: %v; %d calls lost or mismatched (%s)", r.startup.err, r.startup.lost, r.startup.firstErr))
	}
	return bad
}
