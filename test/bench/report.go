package main

import (
	_ "embed"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// analysis is the hand-written part of BENCHMARKS.md: profiling findings
// and what is ours, from the run that produced the committed file.
//
//go:embed analysis.md
var analysis string

// writeReport writes the report where the options say and returns its path.
func writeReport(o options, root string, r result) (string, error) {
	path := o.out
	if path == "" && o.quick {
		f, err := os.CreateTemp("", "methodd-bench-*.md")
		if err != nil {
			return "", err
		}
		path = f.Name()
		if err := f.Close(); err != nil {
			return "", err
		}
	}
	if path == "" {
		path = filepath.Join(root, "BENCHMARKS.md")
	}
	return path, os.WriteFile(path, []byte(renderReport(o, r)), 0o644)
}

// renderReport is the whole Markdown report.
func renderReport(o options, r result) string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	w("# Benchmarks\n\n")
	w("Written by the harness in `test/bench/` (issue 8): rerun the command below to regenerate; edit only\n`test/bench/analysis.md`, the hand-written section at the end.\n\n")
	renderSetup(w, o, r)
	renderTargets(w, o, r)
	renderRatios(w, o, r)
	for _, d := range r.devices {
		renderDevice(w, d)
	}
	renderExec(w, r)
	renderReloadStartup(w, r)
	renderMethod(w, o)
	if bad := r.failures(); len(bad) > 0 {
		w("## Failures\n\n")
		for _, f := range bad {
			w("- %s\n", strings.ReplaceAll(f, "\n", " "))
		}
		w("\n")
	}
	w("%s", analysis)
	return b.String()
}

type writef func(format string, a ...any)

func renderSetup(w writef, o options, r result) {
	m := r.machine
	mode := "full matrix"
	if o.quick {
		mode = "**quick mode** (subset, tiny counts: a smoke run, not a measurement)"
	}
	w("| | |\n|---|---|\n")
	w("| command | `%s` (%s) |\n", o.command, mode)
	w("| date | %s (run took %s) |\n", r.started.UTC().Format(time.RFC3339), r.elapsed.Round(time.Second))
	w("| machine | %s; %d CPUs (nproc); %s RAM; Linux %s |\n", m.cpu, m.cpus, m.memTotal, m.kernel)
	w("| toolchains | %s (methodd and rawdevice built as shipped: CGO_ENABLED=0 -trimpath -tags nethttpomithttp2 -ldflags='-s -w'); node %s |\n", m.goVer, m.nodeVer)
	w("| load average (1/5/15 min) | %s at start, %s at end (it counts the harness's own processes too) |\n", r.loadStart, r.loadEnd)
	w("| per cell | warm-up of 4 × in-flight calls, then %v or %d calls, whichever first |\n\n", o.duration, o.maxCalls)
}

func renderTargets(w writef, o options, r result) {
	w("## Targets of issue 8\n\n| target | measured | verdict |\n|---|---|---|\n")
	for _, t := range r.targets(o) {
		w("| %s | %s | %s |\n", t.name, t.measured, t.verdict)
	}
	w("\n")
}

// renderRatios: a/c and a/d on every cell both were measured on.
func renderRatios(w writef, o options, r result) {
	w("## Ratios per cell\n\ncalls/s ratio (higher is better for a), p50 and CPU-per-call ratio (lower is better for a).\n\n")
	w("| path | in flight | payload | a/c calls/s | a/c p50 | a/c CPU/call | a/d calls/s | a/d p50 | a/d CPU/call |\n")
	w("|---|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	ratio := func(x, y float64) string {
		if y == 0 || x == 0 {
			return "—"
		}
		return fmt.Sprintf("%.2f", x/y)
	}
	for _, path := range o.paths {
		for _, n := range o.inflights {
			for _, size := range o.sizes {
				spec := cellSpec{path: path, inflight: n, size: size}
				a, _ := r.find("a", spec)
				c, _ := r.find("c", spec)
				d, _ := r.find("d", spec)
				w("| %s | %d | %s | %s | %s | %s | %s | %s | %s |\n", path, n, sizeName(size),
					ratio(a.rate(), c.rate()), ratio(float64(a.lat.p50), float64(c.lat.p50)), ratio(float64(a.cpuPerCall()), float64(c.cpuPerCall())),
					ratio(a.rate(), d.rate()), ratio(float64(a.lat.p50), float64(d.lat.p50)), ratio(float64(a.cpuPerCall()), float64(d.cpuPerCall())))
			}
		}
	}
	w("\n")
}

func renderDevice(w writef, d deviceResult) {
	w("## (%s) %s\n\n", d.kind.key, d.kind.title)
	afterLoad := ""
	if d.afterLoad.rss > 0 {
		afterLoad = fmt.Sprintf(", %s %v after its last call", mb(d.afterLoad.rss), afterLoadWindow)
	}
	w("Start-up to subscribed %s; RSS %s when subscribed, idle %s (%v later, no calls)%s; load average %s when it started.\n\n",
		ms(d.startup), mb(d.atReady.rss), mb(d.idle.rss), idleWindow, afterLoad, d.loadStart)
	if d.err != nil {
		w("**Device failed:** %s\n\n", strings.ReplaceAll(d.err.Error(), "\n", " "))
	}
	children := d.kind.key == "b"
	w("| path | in flight | payload | calls | calls/s | p50 | p90 | p99 | CPU µs/call |")
	if children {
		w(" children CPU µs/call |")
	}
	w(" peak RSS | lost | mismatched |\n|---|--:|--:|--:|--:|--:|--:|--:|--:|")
	if children {
		w("--:|")
	}
	w("--:|--:|--:|\n")
	for _, c := range d.cells {
		w("| %s | %d | %s | %d | %.0f | %s | %s | %s | %.1f |", c.path, c.inflight, sizeName(c.size), c.lat.n, c.rate(),
			ms(c.lat.p50), ms(c.lat.p90), ms(c.lat.p99), perCall(c.cpu, c.measured))
		if children {
			w(" %.1f |", perCall(c.childCPU, c.measured))
		}
		peak := mb(c.rss.peak)
		if !c.peakReset {
			peak += " (since start)"
		}
		w(" %s | %d | %d |\n", peak, c.lost, c.mismatched)
	}
	w("\n")
}

// perCall is total ÷ n in microseconds.
func perCall(total time.Duration, n int) float64 {
	if n == 0 {
		return 0
	}
	return float64(total) / float64(time.Microsecond) / float64(n)
}

func renderExec(w writef, r result) {
	w("## Raw os/exec of /bin/true (the reference for b)\n\n")
	w("A loop of `exec.CommandContext(ctx, \"/bin/true\").Run()` in the harness process, run right before (b)'s MQTT cells\nat the same in-flight count (while (b) is connected and idle).\n\n")
	w("| in flight | runs | runs/s | p50 | p99 | CPU µs/run of /bin/true | (b) MQTT 100 B calls/s | b/exec |\n|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, e := range r.exec {
		b, ok := r.find("b", cellSpec{path: pathMQTT, inflight: e.inflight, size: 100})
		bRate, ratio := "—", "—"
		if ok && e.rate() > 0 {
			bRate, ratio = fmt.Sprintf("%.0f", b.rate()), fmt.Sprintf("%.2f", b.rate()/e.rate())
		}
		w("| %d | %d | %.0f | %s | %s | %.0f | %s | %s |\n", e.inflight, e.runs, e.rate(), ms(e.lat.p50), ms(e.lat.p99),
			perCall(e.childCPU, e.runs), bRate, ratio)
	}
	w("\n")
}

func renderReloadStartup(w writef, r result) {
	w("## Reload and start-up of (a)\n\n")
	switch rl := r.reload; {
	case rl.lat.n > 0:
		w("- Reload latency (rename → first call answered by the new file), %d reloads: p50 %s, p90 %s, p99 %s, max %s; %d not observed within %v.\n",
			rl.lat.n, ms(rl.lat.p50), ms(rl.lat.p90), ms(rl.lat.p99), ms(rl.lat.max), rl.missed, reloadWait)
	default:
		w("- Reload latency: not measured (%v).\n", rl.err)
	}
	if s := r.startup.lat; s.n > 0 {
		w("- Start-up (exec → the daemon's READY=1 on its notification socket, sent once connected and subscribed), %d starts: p50 %s, p90 %s, p99 %s, max %s.\n",
			s.n, ms(s.p50), ms(s.p90), ms(s.p99), ms(s.max))
	} else {
		w("- Start-up: not measured (%v).\n", r.startup.err)
	}
	w("\n")
}

func renderMethod(w writef, o options) {
	w(`## How it measures

- One process (the harness) runs the local hub in-process on 127.0.0.1 and both callers; each device is a
  separate process. All devices are started first, one at a time (start-up and idle RSS are read then),
  and stay connected; the matrix then runs cell by cell, each cell measured for every device in turn
  (a, c, d, b) before the next, so that a ratio compares measurements taken seconds apart, not minutes.
  Only one device gets calls at a time; the others sit idle. A device's CPU is utime+stime from /proc/PID/stat (all
  threads; 10 ms ticks) over the timed part of a cell, divided by the calls started in it; its RSS is
  VmRSS from /proc/PID/status, the peak VmHWM after resetting it (clear_refs 5) at the start of each cell;
  after the last cell every device sits 25 s without calls and its RSS is read again (full runs).
- MQTT path: Hub.Invoke, the hub's inline client, publishes on the device's method topic directly.
  REST path: POST /twins/{id}/methods over keep-alive HTTPS (HTTP/1.1, one connection per worker) with a
  service SAS, as a cloud caller. The harness (hub + callers) shares the 2 CPUs with the device.
- Every payload is {"id","pad"} of exactly the stated size with an id unique in the run; every reply must
  be status 200 with the same JSON (byte-equal or equal once decoded). A lost or mismatched reply fails
  the run (exit 1).
- (a) and (b) run `+"`methodd run`"+` as shipped: its default log level (info: one log line per call, read
  by the harness) and its default GOGC (200; the harness sets no GOGC for any device, so (c) runs Go's
  100); handlers set concurrency 1024 so no call is refused. (b) replies with the payload after
  /bin/true exits 0. (c) is test/bench/rawdevice, paho answering from its message callback (a separate
  module, so that internal/device stays the methodd module's only paho importer). (d) is
  test/bench/node/echo-device.js on azure-iot-device-mqtt from test/conformance/node_modules.
- Readiness: each daemon gets a notification socket in NOTIFY_SOCKET, as systemd gives a Type=notify
  service, and is ready at its READY=1 (sent once connected and subscribed, after the SUBACK); (c) and
  (d) print "ready" on stdout at their SUBACK.
- Start-up: exec → the daemon's READY=1, then one
  call with connectTimeoutInSeconds 0 must be answered. Reload: a new file is written beside the
  handlers file and renamed over it; a `+"`version`"+` method is probed every %v until it answers the new version.

`, reloadProbe)
}
