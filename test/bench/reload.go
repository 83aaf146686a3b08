package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Reload probing bounds.
const (
	reloadWait   = 5 * time.Second  // rename → new config answering, per reload
	reloadProbe  = time.Millisecond // pace of the probe calls
	reloadMaxPro = int(reloadWait / reloadProbe)
)

// reloadResult is the reload latency of device (a): rename of a new handlers
// file over the old one → the first call answered by the new file.
type reloadResult struct {
	lat      summary
	missed   int // reloads after the first that were not observed in reloadWait
	lost     int // probe calls without a reply
	firstErr string
	err      error
}

// measureReload starts device (a) with a versioned config and renames a new
// version over it opts.reloads times.
func (h *harness) measureReload(ctx context.Context) (r reloadResult) {
	const id = "bench-a"
	cfg, cs, err := h.daemonFiles(id, fmt.Sprintf(reloadConfig, h.info.CAFile, 0))
	if err != nil {
		r.err = err
		return r
	}
	p, err := h.execDaemon(id, cfg, cs)
	if err != nil {
		r.err = err
		return r
	}
	defer func() { r.err = errors.Join(r.err, p.stop(stopGrace)) }()
	if _, err := p.waitReady(readyTimeout); err != nil {
		r.err = err
		return r
	}
	var lat []time.Duration
	for v := 1; v <= h.opts.reloads && ctx.Err() == nil; v++ {
		d, seen, err := h.reloadOnce(ctx, id, cfg, v, &r)
		switch {
		case err != nil:
			r.err = err
			return r
		case !seen && v == 1:
			r.err = fmt.Errorf("no reload observed: %v after renaming a new handlers file over the old one, "+
				"the daemon still answered with the old one; its output:\n%s", reloadWait, p.tail.String())
			return r
		case !seen:
			r.missed++
		default:
			lat = append(lat, d)
		}
	}
	r.lat = summarize(lat)
	h.progress("reload: %d observed, p50 %s p99 %s, missed %d", r.lat.n, ms(r.lat.p50), ms(r.lat.p99), r.missed)
	return r
}

// reloadOnce writes version v next to cfg, renames it over cfg and probes the
// version method until it answers v (or reloadWait passes).
func (h *harness) reloadOnce(ctx context.Context, id, cfg string, v int, r *reloadResult) (time.Duration, bool, error) {
	tmp := filepath.Join(filepath.Dir(cfg), ".handlers.yaml.new")
	if err := os.WriteFile(tmp, []byte(fmt.Sprintf(reloadConfig, h.info.CAFile, v)), 0o600); err != nil {
		return 0, false, err
	}
	want := []byte(fmt.Sprintf(`{"v":%d}`, v))
	t0 := time.Now()
	if err := os.Rename(tmp, cfg); err != nil {
		return 0, false, err
	}
	tick := time.NewTicker(reloadProbe)
	defer tick.Stop()
	for range reloadMaxPro {
		status, got, err := h.mqtt.call(ctx, id, "version", nil)
		at := time.Since(t0)
		if err != nil {
			r.lost++
			if r.firstErr == "" {
				r.firstErr = fmt.Sprintf("reload %d probe: %v", v, err)
			}
		} else if status == 200 && sameJSON(got, want) {
			return at, true, nil
		}
		if at > reloadWait {
			break
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return 0, false, ctx.Err()
		}
	}
	return 0, false, nil
}
