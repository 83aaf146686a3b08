package main

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// startupResult is the start-up time of device (a): process start → the
// daemon's READY=1 on its notification socket (sent once connected and
// subscribed, after the SUBACK of the methods subscription; see
// startDaemon), each start confirmed by a call answered at once.
type startupResult struct {
	lat      summary
	lost     int
	firstErr string
	err      error
}

// measureStartup starts and stops device (a) opts.starts times.
func (h *harness) measureStartup(ctx context.Context) (r startupResult) {
	const id = "bench-a"
	cfg, cs, err := h.daemonFiles(id, fmt.Sprintf(exprConfig, h.info.CAFile))
	if err != nil {
		r.err = err
		return r
	}
	maker, err := newPayloadMaker(&h.ids, 100)
	if err != nil {
		r.err = err
		return r
	}
	var lat []time.Duration
	for range h.opts.starts {
		if ctx.Err() != nil {
			break
		}
		d, err := h.startOnce(ctx, id, cfg, cs, maker, &r)
		if err != nil {
			r.err = err
			break
		}
		lat = append(lat, d)
	}
	r.lat = summarize(lat)
	h.progress("start-up: %d starts, p50 %s p99 %s", r.lat.n, ms(r.lat.p50), ms(r.lat.p99))
	return r
}

// startOnce starts the daemon, waits for it to be subscribed, checks that an
// echo call is answered without any connect timeout, and stops it.
func (h *harness) startOnce(ctx context.Context, id, cfg, cs string, maker payloadMaker, r *startupResult) (d time.Duration, err error) {
	p, err := h.execDaemon(id, cfg, cs)
	if err != nil {
		return 0, err
	}
	defer func() { err = errors.Join(err, p.stop(stopGrace)) }()
	if d, err = p.waitReady(readyTimeout); err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, cellSlack)
	defer cancel()
	load := runLoad(ctx, loadSpec{caller: h.mqtt, device: id, inflight: 1, maker: maker, maxCalls: 1, deadline: time.Now().Add(cellSlack)})
	r.lost += load.lost + load.mismatched
	if r.firstErr == "" {
		r.firstErr = load.firstErr
	}
	return d, nil
}
