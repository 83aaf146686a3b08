package daemon

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/methodd/methodd/internal/device"
	"github.com/methodd/methodd/internal/sdnotify"
	"github.com/methodd/methodd/internal/testkit"
)

// TestSystemdHealth: the watchdog may be fed while connected or reconnecting
// on schedule, and not once a reconnecting session has gone silent.
func TestSystemdHealth(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	clock := func() time.Time { return now }
	s := newSystemd(nil, slog.New(slog.DiscardHandler), "gw", "1 methods", clock, func() {})
	steps := []struct {
		name    string
		state   *device.State
		advance time.Duration
		want    bool
	}{
		{"connecting at start", nil, 0, true},
		{"first attempt overdue", nil, device.DefaultDialTimeout + stallGrace + time.Second, false},
		{"connected", &device.State{Kind: device.Connected}, 0, true},
		{"connected for hours", nil, 5 * time.Hour, true},
		{"renewal attempt keeps the old connection", &device.State{Kind: device.Connecting, Renewal: true}, 0, true},
		{"disconnected, retry in 10s", &device.State{Kind: device.Disconnected, Err: errors.New("EOF"), RetryIn: 10 * time.Second}, 0, true},
		{"still within retry + grace", nil, 10*time.Second + stallGrace - time.Second, true},
		{"silent past retry + grace", nil, 2 * time.Second, false},
		{"a new attempt reports", &device.State{Kind: device.Connecting}, 0, true},
		{"stopped", &device.State{Kind: device.Stopped}, device.DefaultDialTimeout + stallGrace + time.Second, false},
	}
	for _, st := range steps {
		now = now.Add(st.advance)
		if st.state != nil {
			s.onState(*st.state)
		}
		if got := s.healthy(); got != st.want {
			t.Errorf("%s: healthy() = %v, want %v", st.name, got, st.want)
		}
	}
}

// TestSystemdWatchdogFeedsOnlyWhileHealthy runs the watchdog loop on the
// bubble's fake clock against a real notify socket and counts WATCHDOG=1
// exactly: every interval/2 while connected or reconnecting on schedule,
// none while a reconnecting session is overdue.
func TestSystemdWatchdogFeedsOnlyWhileHealthy(t *testing.T) {
	ns := testkit.ListenNotify(t)     // outside the bubble: its reader blocks on real I/O
	const interval = 60 * time.Second // pings every 30 s; stallGrace is 60 s
	synctest.Test(t, func(t *testing.T) {
		s := newSystemd(sdnotify.New(ns.Getenv()), slog.New(slog.DiscardHandler), "gw", "1 methods", time.Now, func() {})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		s.onState(device.State{Kind: device.Connected})
		go func() { s.watchdog(ctx, interval); close(done) }()
		// Pings at 0 and 30 s while connected.
		time.Sleep(31 * time.Second)
		// Lost at 31 s, retry in 10 s: healthy until 31+10+60 = 101 s, so
		// pings at 60 and 90 s, none at 120 and 150.
		s.onState(device.State{Kind: device.Disconnected, Err: errors.New("EOF"), RetryIn: 10 * time.Second})
		time.Sleep(131 * time.Second)
		// A new attempt at 162 s: healthy until 162+30+60 = 252 s: pings at
		// 180, 210 and 240 s, none at 270.
		s.onState(device.State{Kind: device.Connecting})
		time.Sleep(119 * time.Second)
		// Connected at 281 s: a ping at 300 s.
		s.onState(device.State{Kind: device.Connected})
		time.Sleep(20 * time.Second)
		cancel()
		<-done
	})
	if got, want := countWatchdog(t, ns), 8; got != want {
		t.Errorf("%d WATCHDOG=1 pings, want %d", got, want)
	}
}

// countWatchdog counts the WATCHDOG=1 datagrams received so far. The sends
// are synchronous and the socket keeps their order, so a fence datagram
// sent now arrives after all of them.
func countWatchdog(t *testing.T, ns *testkit.NotifySocket) int {
	t.Helper()
	const fence = "X_FENCE=1"
	if err := sdnotify.New(ns.Getenv()).Notify(fence); err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		select {
		case m := <-ns.Msgs:
			switch m {
			case fence:
				return n
			case sdnotify.FieldWatchdog:
				n++
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the fence datagram did not arrive within 10 s")
		}
	}
}

// TestSystemdStatusAndReady: READY=1 comes once, with the first connection;
// every later state change updates STATUS= with the connection state and
// the handlers serving; a reload is framed by RELOADING=1 and READY=1.
func TestSystemdStatusAndReady(t *testing.T) {
	ns := testkit.ListenNotify(t)
	readyCalls := 0
	s := newSystemd(sdnotify.New(ns.Getenv()), slog.New(slog.DiscardHandler), "gw", "3 methods, config abc", time.Now, func() { readyCalls++ })
	next := func() string {
		t.Helper()
		select {
		case m := <-ns.Msgs:
			return m
		case <-time.After(10 * time.Second):
			t.Fatal("no notification within 10 s")
			return ""
		}
	}
	want := func(got, prefix, contains string) {
		t.Helper()
		if !strings.HasPrefix(got, prefix) || !strings.Contains(got, contains) {
			t.Fatalf("notification %q, want prefix %q containing %q", got, prefix, contains)
		}
	}
	s.onState(device.State{Kind: device.Connecting})
	want(next(), "STATUS=connecting; 3 methods, config abc", "")
	s.onState(device.State{Kind: device.Connected})
	want(next(), "READY=1\nSTATUS=connected as gw; 3 methods, config abc", "")
	s.onState(device.State{Kind: device.Disconnected, Err: errors.New("EOF"), RetryIn: 2 * time.Second})
	want(next(), "STATUS=disconnected (EOF), retrying in 2s; ", "3 methods")
	s.onState(device.State{Kind: device.Connected})
	want(next(), "STATUS=connected as gw; ", "") // READY=1 only once
	s.reloading()
	want(next(), "RELOADING=1\nMONOTONIC_USEC=", "")
	s.reloaded("4 methods, config def reloaded at X")
	want(next(), "READY=1\nSTATUS=connected as gw; 4 methods, config def reloaded at X", "")
	s.stopping()
	want(next(), "STOPPING=1", "")
	if readyCalls != 1 {
		t.Errorf("onReady ran %d times, want once", readyCalls)
	}
}
