package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/methodd/methodd/internal/device"
	"github.com/methodd/methodd/internal/sdnotify"
)

// stallGrace is how long past its announced retry a reconnecting session
// may stay silent before the daemon counts as unhealthy: it covers one
// connection attempt (device.DefaultDialTimeout) with room to spare.
const stallGrace = 2 * device.DefaultDialTimeout

// runHealth turns device session state changes into what systemd is told:
// READY=1 once, after the first subscription (never before); STATUS= with
// the connection state; WATCHDOG=1 only while the session is healthy.
//
// Healthy means connected, or reconnecting on schedule: a session waiting
// out its back-off during a network outage is healthy (a restart would not
// bring the network back), one that stopped reporting is not.
type runHealth struct {
	n        *sdnotify.Notifier
	identity string
	now      func() time.Time
	onFirst  func() // run once, at the first subscription

	mu        sync.Mutex
	ready     bool
	connected bool
	deadline  time.Time // while not connected: the next report is due by then
	conn      string    // STATUS= connection part
	reload    string    // STATUS= reload part (reloader summary)
}

func newRunHealth(n *sdnotify.Notifier, identity, reload string, now func() time.Time, onFirst func()) *runHealth {
	return &runHealth{n: n, identity: identity, now: now, onFirst: onFirst, reload: reload,
		conn: "connecting", deadline: now().Add(device.DefaultDialTimeout + stallGrace)}
}

// onState is the device session's OnState callback.
func (h *runHealth) onState(s device.State) {
	h.mu.Lock()
	first := false
	switch s.Kind {
	case device.Connected:
		h.connected = true
		h.conn = "connected as " + h.identity
		first = !h.ready
		h.ready = true
	case device.Connecting:
		if s.Renewal { // the old connection keeps serving meanwhile
			break
		}
		h.connected = false
		h.conn = "connecting"
		h.deadline = h.now().Add(device.DefaultDialTimeout + stallGrace)
	case device.Disconnected:
		if s.Renewal {
			break
		}
		h.connected = false
		h.conn = fmt.Sprintf("disconnected (%v), retrying in %s", s.Err, s.RetryIn.Round(time.Millisecond))
		h.deadline = h.now().Add(s.RetryIn + stallGrace)
	case device.Stopped:
		h.connected = false
		h.conn = "stopped"
	}
	status := h.statusLocked()
	h.mu.Unlock()
	if first {
		h.onFirst()
		_ = h.n.Notify(sdnotify.FieldReady, sdnotify.StatusField(status))
		return
	}
	_ = h.n.Status(status)
}

// status composes STATUS= from the connection state and a reload summary;
// it is the reloader's Status hook, so it also records the summary.
func (h *runHealth) status(reload string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reload = reload
	return h.statusLocked()
}

func (h *runHealth) statusLocked() string { return h.conn + "; " + h.reload }

// healthy reports whether the watchdog may be fed now.
func (h *runHealth) healthy() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.connected || h.now().Before(h.deadline)
}

// watchdog feeds systemd's watchdog at half its interval while healthy; it
// returns at once when the service has no watchdog (no WATCHDOG_USEC).
func (h *runHealth) watchdog(ctx context.Context, getenv func(string) string, pid int) {
	interval, ok := sdnotify.WatchdogInterval(getenv, pid)
	if !ok {
		return
	}
	t := time.NewTicker(interval / 2)
	defer t.Stop()
	for {
		if h.healthy() {
			_ = h.n.Watchdog()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
