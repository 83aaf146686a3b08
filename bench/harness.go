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
			return res, fmt.Errorf("device (d) needs the Node SDK in %s: run `npm ci --prefix conformance` (scripts/test.sh does), or give --skip-node: %w", o.nodeModules, err)
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
	for _, k := range deviceKinds(o.skipNode) {
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		if o.only != "" && !slices.Contains(strings.Split(o.only, ","), k.key) {
			continue
		}
		d := h.measureDevice(ctx, k)
		res.devices = append(res.devices, d)
		res.exec = append(res.exec, d.exec...)
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
	kind               deviceKind
	startup            time.Duration
	atReady            memory // when it said it is subscribed
	idle               memory // idleWindow later, no call in between
	afterLoad          memory // afterLoadWindow after its last call (full runs only)
	cells              []cellResult
	exec               []execResult // device (b) only: the bare exec loop, measured beside its cells
	loadStart, loadEnd string
	err                error // the device failed: its numbers are incomplete
}

// measureDevice starts k's device, runs the matrix against it and stops it.
func (h *harness) measureDevice(ctx context.Context, k deviceKind) (r deviceResult) {
	r.kind, r.loadStart = k, loadAverage()
	h.progress("device %s (%s): starting; load average %s", k.key, k.title, r.loadStart)
	p, err := k.start(h, k.id)
	if err != nil {
		r.err = err
		return r
	}
	defer func() {
		r.err = errors.Join(r.err, p.stop(stopGrace))
		r.loadEnd = loadAverage()
	}()
	if r.startup, err = p.waitReady(readyTimeout); err != nil {
		r.err = err
		return r
	}
	if r.atReady, err = readMemory(p.pid()); err != nil {
		r.err = err
		return r
	}
	if r.idle, err = quietMemory(ctx, p, idleWindow); err != nil {
		r.err = err
		return r
	}
	for _, path := range h.opts.paths {
		for _, n := range h.opts.inflights {
			if k.key == "b" && path == pathMQTT {
				r.exec = append(r.exec, h.measureExec(ctx, n)) // the same moment as (b)'s cells at n
			}
			for _, size := range h.opts.sizes {
				c := h.runCell(ctx, p, k.id, cellSpec{path: path, inflight: n, size: size})
				h.progress("  %s", c.line())
				r.cells = append(r.cells, c)
				if !p.alive() {
					r.err = fmt.Errorf("%s exited during %s: %v\n%s", p.name, c.line(), p.waitErr, p.tail.String())
					return r
				}
			}
		}
	}
	if !h.opts.quick {
		r.afterLoad, r.err = quietMemory(ctx, p, afterLoadWindow)
	}
	return r
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
		return memory{}, fmt.Errorf("%s exited while idle: %v\n%s", p.name, p.waitErr, p.tail.String())
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
