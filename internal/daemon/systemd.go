package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/methodd/methodd/internal/device"
	"github.com/methodd/methodd/internal/logkey"
	"github.com/methodd/methodd/internal/sdnotify"
)

// stallGrace is how long past its announced retry a reconnecting session
// may stay silent before the daemon counts as unhealthy: it covers one
// connection attempt (device.DefaultDialTimeout) with room to spare.
const stallGrace = 2 * device.DefaultDialTimeout

// systemd tells the service manager what the daemon is doing (design §3
// "systemd"); it is the daemon's only sd_notify writer:
//
//   - READY=1 once, after the first subscription (never before);
//   - RELOADING=1 (with MONOTONIC_USEC) when a reload starts, READY=1 when
//     it is over, whatever its outcome;
//   - STATUS= with the connection state and the handlers serving, on every
//     change of either;
//   - WATCHDOG=1 at half the watchdog interval, only while healthy;
//   - STOPPING=1 when shutdown begins.
//
// Healthy means connected, or reconnecting on schedule: a session waiting
// out its back-off during a network outage is healthy (a restart would not
// bring the network back), one that stopped reporting is not.
type systemd struct {
	n       *sdnotify.Notifier
	log     *slog.Logger
	now     func() time.Time
	onReady func() // run once, at the first subscription, before READY=1

	mu        sync.Mutex
	identity  string // the client id in "connected as"
	ready     bool
	connected bool
	deadline  time.Time // while not connected: the next report is due by then
	conn      string    // STATUS= connection part
	config    string    // STATUS= handlers part
}

func newSystemd(n *sdnotify.Notifier, log *slog.Logger, identity, config string, now func() time.Time, onReady func()) *systemd {
	return &systemd{n: n, log: log, identity: identity, now: now, onReady: onReady, config: config,
		conn: "connecting", deadline: now().Add(device.DefaultDialTimeout + stallGrace)}
}

// onState takes a device session state change.
func (s *systemd) onState(st device.State) {
	s.mu.Lock()
	first := false
	switch st.Kind {
	case device.Connected:
		s.connected = true
		s.conn = "connected as " + s.identity
		first = !s.ready
		s.ready = true
	case device.Connecting:
		if st.Renewal { // the old connection keeps serving meanwhile
			break
		}
		s.connected = false
		s.conn = "connecting"
		s.deadline = s.now().Add(device.DefaultDialTimeout + stallGrace)
	case device.Disconnected:
		if st.Renewal {
			break
		}
		s.connected = false
		s.conn = fmt.Sprintf("disconnected (%v), retrying in %s", st.Err, st.RetryIn.Round(time.Millisecond))
		s.deadline = s.now().Add(st.RetryIn + stallGrace)
	case device.Stopped:
		s.connected = false
		s.conn = "stopped"
	}
	status := s.statusLocked()
	s.mu.Unlock()
	if first {
		s.onReady()
		s.send(sdnotify.FieldReady, sdnotify.StatusField(status))
		return
	}
	s.send(sdnotify.StatusField(status))
}

// setIdentity names the identity of the next "connected as" status (the
// session's may change when DPS provisioning replaces it).
func (s *systemd) setIdentity(identity string) {
	s.mu.Lock()
	s.identity = identity
	s.mu.Unlock()
}

// reloading tells systemd a reload has begun.
func (s *systemd) reloading() {
	if err := s.n.Reloading(); err != nil {
		s.log.Warn("cannot notify systemd", logkey.Err, err)
	}
}

// reloaded records the handlers part of STATUS= and tells systemd the
// reload is over.
func (s *systemd) reloaded(config string) {
	s.mu.Lock()
	s.config = config
	status := s.statusLocked()
	s.mu.Unlock()
	s.send(sdnotify.FieldReady, sdnotify.StatusField(status))
}

// stopping tells systemd shutdown has begun.
func (s *systemd) stopping() { s.send(sdnotify.FieldStopping) }

// send writes fields, logging a failure: a notify problem never blocks or
// stops the daemon.
func (s *systemd) send(fields ...string) {
	if err := s.n.Notify(fields...); err != nil {
		s.log.Warn("cannot notify systemd", logkey.Err, err)
	}
}

func (s *systemd) statusLocked() string { return s.conn + "; " + s.config }

// healthy reports whether the watchdog may be fed now.
func (s *systemd) healthy() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.connected || s.now().Before(s.deadline)
}

// watchdog feeds systemd's watchdog every interval/2 while healthy, until
// ctx is done; it returns at once when interval is 0 (no watchdog).
func (s *systemd) watchdog(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		return
	}
	t := time.NewTicker(interval / 2)
	defer t.Stop()
	for {
		if s.healthy() {
			s.send(sdnotify.FieldWatchdog)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
