package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/methodd/methodd/internal/localhub"
)

// Bounds of the run's waits.
const (
	readyTimeout = 30 * time.Second // device start → subscribed
	stopGrace    = 10 * time.Second // SIGTERM → exit
	cellSlack    = (callTimeoutSeconds + 5) * time.Second
)

// harness owns everything a run starts: the temp dir, the hub, the callers.
type harness struct {
	opts options
	logw io.Writer // progress, one line per step
	root string
	work string
	bins binaries
	hub  *localhub.Hub
	info localhub.Info
	mqtt mqttCaller
	rest *restCaller
	ids  atomic.Uint64 // payload ids, unique across the run
}

// result is everything a run measured.
type result struct {
	started            time.Time
	elapsed            time.Duration
	machine            machineInfo
	loadStart, loadEnd string
	exec               []execResult
	devices            []deviceResult
	reload             reloadResult
	startup            startupResult
}

// runHarness builds, starts the hub and measures everything in order.
func runHarness(ctx context.Context, o options, root string, logw io.Writer) (res result, err error) {
	if !o.skipNode {
		if _, err := os.Stat(filepath.Join(o.nodeModules, "azure-iot-device-mqtt")); err != nil {
			return res, fmt.Errorf("device (d) needs the Node SDK in %s: run `npm ci --prefix test/conformance` (scripts/test.sh does), or give --skip-node: %w", o.nodeModules, err)
		}
	}
	res.started, res.loadStart = time.Now(), loadAverage()
	h := &harness{opts: o, logw: logw, root: root}
	if h.work, err = os.MkdirTemp("", "methodd-bench-"); err != nil {
		return res, err
	}
	defer os.RemoveAll(h.work)
	h.progress("load average %s; building methodd and rawdevice", res.loadStart)
	res.machine = describeMachine(ctx)
	if h.bins, err = build(ctx, root, h.work, h.opts.symbols); err != nil {
		return res, err
	}
	if err := h.startHub(ctx); err != nil {
		return res, err
	}
	defer h.hub.Close()
	defer h.rest.close()
	var kinds []deviceKind
	for _, k := range deviceKinds(o.skipNode) {
		if o.only == "" || slices.Contains(strings.Split(o.only, ","), k.key) {
			kinds = append(kinds, k)
		}
	}
	res.devices = h.measureDevices(ctx, kinds)
	for _, d := range res.devices {
		res.exec = append(res.exec, d.exec...)
	}
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	res.reload = h.measureReload(ctx)
	res.startup = h.measureStartup(ctx)
	res.loadEnd, res.elapsed = loadAverage(), time.Since(res.started)
	return res, ctx.Err()
}

// startHub starts the in-process hub on free loopback ports with one
// identity per device kind.
func (h *harness) startHub(ctx context.Context) error {
	var ids []string
	for _, k := range deviceKinds(false) {
		ids = append(ids, k.id)
	}
	hub, err := localhub.Start(ctx, localhub.Options{
		Dir:       filepath.Join(h.work, "hub"),
		MQTTAddr:  "127.0.0.1:0",
		HTTPSAddr: "127.0.0.1:0",
		Devices:   ids,
		Logger:    slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return fmt.Errorf("local hub: %w", err)
	}
	h.hub, h.info, h.mqtt = hub, hub.Info(), mqttCaller{hub: hub}
	if h.rest, err = newRESTCaller(h.info, maxOf(h.opts.inflights)); err != nil {
		hub.Close()
		return err
	}
	return nil
}

// progress writes one line to the progress stream.
func (h *harness) progress(format string, a ...any) {
	fmt.Fprintf(h.logw, "bench: "+format+"\n", a...)
}

// callerFor returns the caller of a path.
func (h *harness) callerFor(path string) caller {
	if path == pathREST {
		return h.rest
	}
	return h.mqtt
}

// deviceResult is one device's measurements.
type deviceResult struct {
	kind      deviceKind
	startup   time.Duration
	atReady   memory // when it said it is subscribed
	idle      memory // idleWindow later, no call in between
	afterLoad memory // afterLoadWindow after its last call (full runs only)
	cells     []cellResult
	exec      []execResult // device (b) only: the bare exec loop, measured beside its cells
	loadStart string       // when it was started
	err       error        // the device failed: its numbers are incomplete
}

// measureDevices starts every device, one at a time (start-up and idle
// memory are measured with the others idle), then runs the matrix with the
// devices interleaved: each cell is measured for every device in turn
// before the next cell, so the ratios compare measurements minutes apart
// at most one cell's length, not one device's whole run. Only one device
// gets calls at any time; the others sit connected and idle.
func (h *harness) measureDevices(ctx context.Context, kinds []deviceKind) []deviceResult {
	res := make([]deviceResult, len(kinds))
	procs := make([]*proc, len(kinds))
	defer func() {
		for i, p := range procs {
			if p != nil {
				res[i].err = errors.Join(res[i].err, p.stop(stopGrace))
			}
		}
	}()
	for i, k := range kinds {
		if ctx.Err() != nil {
			return res
		}
		procs[i] = h.startDevice(ctx, k, &res[i])
	}
	for _, path := range h.opts.paths {
		for _, n := range h.opts.inflights {
			for j, size := range h.opts.sizes {
				for i, k := range kinds {
					p := procs[i]
					if p == nil || res[i].err != nil || ctx.Err() != nil {
						continue
					}
					if k.key == "b" && path == pathMQTT && j == 0 {
						res[i].exec = append(res[i].exec, h.measureExec(ctx, n)) // right before (b)'s cells at n
					}
					c := h.runCell(ctx, p, k.id, cellSpec{path: path, inflight: n, size: size})
					h.progress("  %s %s", k.key, c.line())
					res[i].cells = append(res[i].cells, c)
					if !p.alive() {
						res[i].err = fmt.Errorf("%s exited during %s: %w\n%s", p.name, c.line(), p.waitErr, p.tail.String())
					}
				}
			}
		}
	}
	if !h.opts.quick && ctx.Err() == nil {
		h.progress("waiting %v without calls", afterLoadWindow)
		select {
		case <-time.After(afterLoadWindow):
		case <-ctx.Done():
			return res
		}
		for i, p := range procs {
			if p != nil && res[i].err == nil {
				res[i].afterLoad, res[i].err = readMemory(p.pid())
			}
		}
	}
	return res
}

// startDevice starts k's device and measures its start-up and idle memory
// into r. It returns nil (and sets r.err) when the device did not come up.
func (h *harness) startDevice(ctx context.Context, k deviceKind, r *deviceResult) *proc {
	r.kind, r.loadStart = k, loadAverage()
	h.progress("device %s (%s): starting; load average %s", k.key, k.title, r.loadStart)
	p, err := k.start(h, k.id)
	if err != nil {
		r.err = err
		return nil
	}
	if r.startup, err = p.waitReady(readyTimeout); err == nil {
		if r.atReady, err = readMemory(p.pid()); err == nil {
			r.idle, err = quietMemory(ctx, p, idleWindow)
		}
	}
	r.err = err
	return p
}

// idleWindow is how long a device sits without calls after it subscribed
// before its idle RSS is read: start-up work (a daemon returns its start-up
// garbage to the OS once connected) is over by then.
const idleWindow = time.Second

// afterLoadWindow is how long a device sits without calls after its last
// cell before its RSS is read again: what it keeps once a burst is over.
// methodd returns memory one to two of its 10 s checks after the last call.
const afterLoadWindow = 25 * time.Second

// quietMemory reads p's memory after window without calls.
func quietMemory(ctx context.Context, p *proc, window time.Duration) (memory, error) {
	t := time.NewTimer(window)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return memory{}, ctx.Err()
	case <-p.exited:
		return memory{}, fmt.Errorf("%s exited while idle: %w\n%s", p.name, p.waitErr, p.tail.String())
	}
	return readMemory(p.pid())
}

// maxOf returns the largest of xs (xs is never empty).
func maxOf(xs []int) int {
	m := xs[0]
	for _, x := range xs[1:] {
		m = max(m, x)
	}
	return m
}
