package main

import (
	"context"
	"errors"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/methodd/methodd/internal/device"
	"github.com/methodd/methodd/internal/sdnotify"
)

// TestRunHealth: the watchdog is fed while connected or reconnecting on
// schedule, and not once a reconnecting session has gone silent.
func TestRunHealth(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	clock := func() time.Time { return now }
	h := newRunHealth(nil, "gw", "1 methods", clock, func() {})
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
	for _, s := range steps {
		now = now.Add(s.advance)
		if s.state != nil {
			h.onState(*s.state)
		}
		if got := h.healthy(); got != s.want {
			t.Errorf("%s: healthy() = %v, want %v", s.name, got, s.want)
		}
	}
}

// TestRunWatchdogPings: with WATCHDOG_USEC set for this process, a healthy
// daemon sends WATCHDOG=1 on NOTIFY_SOCKET.
func TestRunWatchdogPings(t *testing.T) {
	ns := listenNotify(t)
	env := map[string]string{"NOTIFY_SOCKET": ns.path, "WATCHDOG_USEC": "200000", "WATCHDOG_PID": strconv.Itoa(os.Getpid())}
	getenv := func(k string) string { return env[k] }
	h := newRunHealth(sdnotify.New(getenv), "gw", "1 methods", time.Now, func() {})
	h.onState(device.State{Kind: device.Connected})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.watchdog(ctx, getenv, os.Getpid()); close(done) }()
	defer func() { cancel(); <-done }()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case m := <-ns.msgs:
			if m == "WATCHDOG=1" {
				return
			}
		case <-deadline:
			t.Fatal("no WATCHDOG=1 within 30 s")
		}
	}
}
