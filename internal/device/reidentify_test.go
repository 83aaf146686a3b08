package device

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/methodd/methodd/iothub"
)

// reidentifier is a Config.Reidentify that hands out device-2, device-3, …
// (or fails while fail is set) and counts its calls.
type reidentifier struct {
	calls atomic.Int32
	fail  atomic.Bool
}

var errNoAssignment = errors.New("registration failed")

func (r *reidentifier) reidentify(ctx context.Context) (iothub.ConnectionString, error) {
	n := r.calls.Add(1)
	if ctx.Err() != nil {
		return iothub.ConnectionString{}, ctx.Err()
	}
	if _, ok := ctx.Deadline(); !ok {
		return iothub.ConnectionString{}, errors.New("Reidentify called without a deadline")
	}
	if r.fail.Load() {
		return iothub.ConnectionString{}, errNoAssignment
	}
	return iothub.ConnectionString{HostName: tvHost, DeviceID: "device-" + string('1'+n), SharedAccessKey: tvKey}, nil
}

// TestReidentifyAfterRefusedIdentity: a CONNACK refusing the identity (5,
// not authorised; 4, bad user name or password) makes the session call
// Reidentify once before its next attempt, which connects as the new
// identity, after the usual back-off; a refusal for another reason (3,
// server unavailable) keeps the identity.
func TestReidentifyAfterRefusedIdentity(t *testing.T) {
	for _, rc := range []byte{4, 5} {
		t.Run(string(rune('0'+rc)), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := newPipeBroker(t)
				states := make(chan timedState, 64)
				var r reidentifier
				cfg := pipeConfig(b)
				cfg.OnState = stateLog(states)
				cfg.Reidentify = r.reidentify
				s, err := New(cfg, echo)
				if err != nil {
					t.Fatal(err)
				}
				s.backoff.rand = func() float64 { return 0.5 }
				stop := runSession(t, s)

				expectState(t, states, Connecting, 1)
				fc := b.next(t)
				if got := fc.connect.ClientIdentifier; got != "device-1" {
					t.Fatalf("first CONNECT as %q, want the configured device-1", got)
				}
				if n := r.calls.Load(); n != 0 {
					t.Fatalf("Reidentify called %d times before the first refusal, want 0", n)
				}
				fc.accept(b, 3) // server unavailable: not about the identity
				expectState(t, states, Disconnected, 1)
				expectState(t, states, Connecting, 2)
				fc = b.next(t)
				if got, n := fc.connect.ClientIdentifier, r.calls.Load(); got != "device-1" || n != 0 {
					t.Fatalf("after CONNACK 3: CONNECT as %q with %d Reidentify calls, want device-1 and 0", got, n)
				}
				fc.accept(b, rc)
				d := expectState(t, states, Disconnected, 2)
				fc = b.next(t)
				if got := time.Since(d.at); got != d.RetryIn {
					t.Errorf("next CONNECT %v after the refusal, want the back-off %v", got, d.RetryIn)
				}
				expectState(t, states, Connecting, 3)
				if got, n := fc.connect.ClientIdentifier, r.calls.Load(); got != "device-2" || n != 1 {
					t.Fatalf("after CONNACK %d: CONNECT as %q with %d Reidentify calls, want device-2 and 1", rc, got, n)
				}
				fc.accept(b, 0)
				fc.waitSubscribed(t)
				expectState(t, states, Connected, 3)
				if got := s.Identity().DeviceID; got != "device-2" {
					t.Errorf("Identity: got %q, want device-2", got)
				}

				fc.conn.Close() // a plain drop: the identity stays
				expectState(t, states, Disconnected, 3)
				fc = b.next(t)
				if got, n := fc.connect.ClientIdentifier, r.calls.Load(); got != "device-2" || n != 1 {
					t.Fatalf("after a drop: CONNECT as %q with %d Reidentify calls, want device-2 and 1", got, n)
				}
				fc.accept(b, 0)
				fc.waitSubscribed(t)
				expectState(t, states, Connecting, 4)
				expectState(t, states, Connected, 4)
				stop()
			})
		})
	}
}

// TestReidentifyFirstAndRetriedOnError: with an empty identity the session
// calls Reidentify before its first attempt; an error from it is a failed
// attempt (Disconnected with the error, the usual back-off), and the next
// attempt calls it again.
func TestReidentifyFirstAndRetriedOnError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newPipeBroker(t)
		states := make(chan timedState, 64)
		var r reidentifier
		r.fail.Store(true)
		cfg := pipeConfig(b)
		cfg.Identity = iothub.ConnectionString{}
		cfg.OnState = stateLog(states)
		cfg.Reidentify = r.reidentify
		s, err := New(cfg, echo)
		if err != nil {
			t.Fatal(err)
		}
		s.backoff.rand = func() float64 { return 0.5 }
		stop := runSession(t, s)

		expectState(t, states, Connecting, 1)
		d := expectState(t, states, Disconnected, 1)
		if !errors.Is(d.Err, errNoAssignment) || d.RetryIn != 750*time.Millisecond {
			t.Fatalf("Disconnected: err %v, retry in %v; want %v and 750ms", d.Err, d.RetryIn, errNoAssignment)
		}
		expectState(t, states, Connecting, 2)
		if got := time.Since(d.at); got != d.RetryIn {
			t.Errorf("second attempt %v after the first failed, want %v", got, d.RetryIn)
		}
		d = expectState(t, states, Disconnected, 2)
		if d.RetryIn != 1500*time.Millisecond {
			t.Errorf("second back-off: got %v, want 1.5s (doubled)", d.RetryIn)
		}
		r.fail.Store(false)
		fc := b.next(t)
		expectState(t, states, Connecting, 3)
		if got, n := fc.connect.ClientIdentifier, r.calls.Load(); got != "device-4" || n != 3 {
			t.Fatalf("CONNECT as %q after %d Reidentify calls, want device-4 after 3", got, n)
		}
		fc.accept(b, 0)
		fc.waitSubscribed(t)
		expectState(t, states, Connected, 3)
		stop()
	})
}

// TestEmptyIdentityNeedsReidentify: an empty identity is accepted only
// with Reidentify; an invalid identity from Reidentify is a failed
// attempt, checked as New checks Config.Identity.
func TestEmptyIdentityNeedsReidentify(t *testing.T) {
	if _, err := New(Config{}, echo); err == nil {
		t.Error("empty identity without Reidentify accepted")
	}
	var r reidentifier
	if _, err := New(Config{Reidentify: r.reidentify}, echo); err != nil {
		t.Errorf("empty identity with Reidentify: %v", err)
	}
	bad := func(context.Context) (iothub.ConnectionString, error) {
		return iothub.ConnectionString{HostName: "h", DeviceID: "d", SharedAccessKey: "!!"}, nil
	}
	s, err := New(Config{Reidentify: bad}, echo)
	if err != nil {
		t.Fatal(err)
	}
	s.needID = true
	if err := s.reidentify(context.Background()); err == nil {
		t.Error("an invalid identity from Reidentify was accepted")
	}
	if got := s.Identity().DeviceID; got != "" {
		t.Errorf("Identity after a refused Reidentify result: got %q, want empty", got)
	}
}
