package localhub

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
)

// These tests run the hub's timers on synctest's fake clock, so their
// bounds are exact: the clock advances only when every goroutine of the
// bubble is blocked, and no network I/O is involved.

// newClient returns an open broker client with no connection behind it.
func newClient(srv *mqtt.Server, id string) *mqtt.Client {
	return srv.NewClient(nil, "test", id, true)
}

// awaitResult is what presence.await returned and after how long.
type awaitResult struct {
	cl    *mqtt.Client
	after time.Duration
}

// startAwait runs p.await in its own goroutine.
func startAwait(p *presence, id string, timeout time.Duration) <-chan awaitResult {
	start := time.Now()
	ch := make(chan awaitResult, 1)
	go func() {
		cl := p.await(context.Background(), id, timeout, nil)
		ch <- awaitResult{cl, time.Since(start)}
	}()
	return ch
}

// TestAwaitBounds: a call waits exactly its connect timeout for a device
// that never comes, exactly takeoverWait (or its connect timeout, if
// longer) for a takeover that never completes, and returns the new client
// the instant a takeover completes.
func TestAwaitBounds(t *testing.T) {
	srv := mqtt.New(nil)
	cases := []struct {
		name     string
		timeout  time.Duration
		takeover bool          // a takeover is in progress when the call starts
		complete time.Duration // when the new connection gets its CONNACK; 0 = never
		want     time.Duration
		found    bool
	}{
		{"offline, timeout 0", 0, false, 0, 0, false},
		{"offline, timeout 3 s", 3 * time.Second, false, 0, 3 * time.Second, false},
		{"stuck takeover, timeout 0", 0, true, 0, takeoverWait, false},
		{"stuck takeover, timeout 2 s", 2 * time.Second, true, 0, takeoverWait, false},
		{"stuck takeover, timeout 10 s", 10 * time.Second, true, 0, 10 * time.Second, false},
		{"takeover completes after 1 s", 0, true, time.Second, time.Second, true},
		{"takeover completes at takeoverWait", 0, true, takeoverWait - time.Nanosecond, takeoverWait - time.Nanosecond, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := newPresence()
				old, next := newClient(srv, "dev1"), newClient(srv, "dev1")
				if tc.takeover {
					p.set("dev1", newSession(old, true))
					if got := p.takeover(next); got != old {
						t.Fatalf("takeover replaced %v, want the live client", got)
					}
				}
				res := startAwait(p, "dev1", tc.timeout)
				if tc.complete > 0 {
					time.Sleep(tc.complete)
					p.set("dev1", newSession(next, true))
				}
				r := <-res
				if r.after != tc.want || (r.cl != nil) != tc.found {
					t.Errorf("await returned %v after %v, want found=%v after %v", r.cl, r.after, tc.found, tc.want)
				}
				if tc.found && r.cl != next {
					t.Errorf("await returned %p, want the new client %p", r.cl, next)
				}
			})
		})
	}
}

// eventRecorder collects events passed to Options.OnEvent.
type eventRecorder struct {
	mu  sync.Mutex
	all []Event
}

func (r *eventRecorder) record(e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.all = append(r.all, e)
}

func (r *eventRecorder) events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.all...)
}

// TestExpireAtExact: a live connection is closed exactly when its token
// expires, not a nanosecond before, and reported once with the expiry; a
// clock that Options.Now sets back holds the expiry off by as much.
func TestExpireAtExact(t *testing.T) {
	srv := mqtt.New(nil)
	cases := []struct {
		name    string
		ttl     time.Duration
		setBack time.Duration // Options.Now goes back by this at half the ttl
		want    time.Duration // when the connection must close
	}{
		{"expires at its time", time.Hour, 0, time.Hour},
		{"expired already", -time.Minute, 0, 0},
		{"clock set back", time.Hour, 10 * time.Minute, 70 * time.Minute},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var back atomic.Int64
				var rec eventRecorder
				h := &Hub{
					opts: Options{Now: func() time.Time { return time.Now().Add(-time.Duration(back.Load())) }, OnEvent: rec.record},
					log:  slog.New(slog.DiscardHandler),
				}
				cl := newClient(srv, "dev1")
				start := time.Now()
				expiry := start.Add(tc.ttl)
				h.expireAt(cl, expiry)
				if tc.setBack > 0 {
					time.Sleep(tc.ttl / 2)
					back.Store(int64(tc.setBack))
				}
				if tc.want > 0 {
					time.Sleep(tc.want - time.Nanosecond - time.Since(start))
					synctest.Wait()
					if cl.Closed() {
						t.Fatalf("already closed at %v, before its token expired at %v", time.Since(start), tc.want)
					}
					time.Sleep(time.Nanosecond)
				}
				synctest.Wait()
				if !cl.Closed() || !errors.Is(cl.StopCause(), ErrTokenExpired) {
					t.Fatalf("after %v: closed=%v cause=%v, want closed with ErrTokenExpired", time.Since(start), cl.Closed(), cl.StopCause())
				}
				evs := rec.events()
				if len(evs) != 1 || evs[0].Kind != EventTokenExpired || evs[0].ClientID != "dev1" || !evs[0].Expiry.Equal(expiry) {
					t.Errorf("events %+v, want one %v for dev1 with expiry %v", evs, EventTokenExpired, expiry)
				}
			})
		})
	}
}

// TestExpireAtClosedClient: a connection that ended before its token
// expired is not reported at the expiry.
func TestExpireAtClosedClient(t *testing.T) {
	srv := mqtt.New(nil)
	synctest.Test(t, func(t *testing.T) {
		var rec eventRecorder
		h := &Hub{opts: Options{Now: time.Now, OnEvent: rec.record}, log: slog.New(slog.DiscardHandler)}
		cl := newClient(srv, "dev1")
		h.expireAt(cl, time.Now().Add(time.Minute))
		gone := errors.New("gone")
		cl.Stop(gone)
		time.Sleep(time.Minute)
		synctest.Wait()
		if evs := rec.events(); len(evs) != 0 || !errors.Is(cl.StopCause(), gone) {
			t.Errorf("events %+v, cause %v; want none and the earlier cause", evs, cl.StopCause())
		}
	})
}
