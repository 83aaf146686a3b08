package device

import (
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	"github.com/methodd/methodd/internal/logkey"
	"github.com/methodd/methodd/iothub"
)

// The session's timers on synctest's fake clock: each test runs a real
// session (real paho) against a pipe broker inside a bubble, so that a
// delay is checked to the nanosecond rather than bounded, and an hour of
// token lifetime takes no time. A time.Sleep in a bubble is not a wait for
// something to happen: it moves the fake clock to an exact instant, and
// synctest.Wait then lets every goroutine finish what that instant caused.

// timedState is a state change and when (bubble time) it was reported.
type timedState struct {
	State
	at time.Time
}

// stateLog returns an OnState that records every change in ch.
func stateLog(ch chan timedState) func(State) {
	return func(s State) { ch <- timedState{s, time.Now()} }
}

// nextState returns the next state change; inside a bubble, "within 1h"
// only bounds a test that would otherwise block for good.
func nextState(t *testing.T, ch chan timedState) timedState {
	t.Helper()
	select {
	case s := <-ch:
		return s
	case <-time.After(time.Hour):
		t.Fatal("no state change within 1h")
		return timedState{}
	}
}

// expectState checks the next state change's kind and connection number.
func expectState(t *testing.T, ch chan timedState, kind StateKind, conn uint64) timedState {
	t.Helper()
	s := nextState(t, ch)
	if s.Kind != kind || s.Conn != conn {
		t.Fatalf("state: got %v for conn %d (%+v), want %v for conn %d", s.Kind, s.Conn, s.State, kind, conn)
	}
	return s
}

// TestConnackRefusedRetriesWithBackoff: a refused CONNECT is retried after
// exactly the delay the Disconnected state announced; the delay doubles
// with each failure, and starts again from the minimum once a connection
// has been made.
func TestConnackRefusedRetriesWithBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newPipeBroker(t)
		states := make(chan timedState, 64)
		cfg := pipeConfig(b)
		cfg.OnState = stateLog(states)
		s, err := New(cfg, echo)
		if err != nil {
			t.Fatal(err)
		}
		s.backoff.rand = func() float64 { return 0.5 } // each delay 3/4 of its step
		stop := runSession(t, s)

		// retried waits for the CONNECT that follows a Disconnected state
		// and checks that it came exactly RetryIn later, RetryIn being want.
		retried := func(d timedState, want time.Duration) *fakeConn {
			t.Helper()
			if d.Err == nil {
				t.Errorf("conn %d: Disconnected without a cause", d.Conn)
			}
			if d.RetryIn != want {
				t.Errorf("conn %d: RetryIn %v, want %v", d.Conn, d.RetryIn, want)
			}
			fc := b.next(t)
			if got := time.Since(d.at); got != want {
				t.Errorf("conn %d: next CONNECT %v after Disconnected, want exactly %v", d.Conn, got, want)
			}
			return fc
		}

		expectState(t, states, Connecting, 1)
		b.next(t).accept(b, 5) // not authorised
		d := expectState(t, states, Disconnected, 1)
		fc := retried(d, 750*time.Millisecond) // 3/4 of BackoffMin (1s)
		expectState(t, states, Connecting, 2)
		fc.accept(b, 5)
		d = expectState(t, states, Disconnected, 2)
		fc = retried(d, 1500*time.Millisecond) // 3/4 of 2s
		expectState(t, states, Connecting, 3)
		fc.accept(b, 0)
		fc.waitSubscribed(t)
		expectState(t, states, Connected, 3)

		fc.conn.Close() // the network drops
		dropped := time.Now()
		d = expectState(t, states, Disconnected, 3)
		if !d.at.Equal(dropped) {
			t.Errorf("connection lost reported %v after the drop, want at once", d.at.Sub(dropped))
		}
		fc = retried(d, 750*time.Millisecond) // the minimum again
		expectState(t, states, Connecting, 4)
		fc.accept(b, 0)
		fc.waitSubscribed(t)
		expectState(t, states, Connected, 4)
		stop()
	})
}

// TestRenewalAt80PercentOfTTL: with the default token lifetime (1h), the
// session connects again with a fresh token exactly 48 minutes after it
// minted the first one, while the first connection is still up.
func TestRenewalAt80PercentOfTTL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newPipeBroker(t)
		states := make(chan timedState, 64)
		cfg := pipeConfig(b)
		cfg.OnState = stateLog(states)
		stop := startSession(t, cfg, echo)

		fc1 := b.next(t)
		minted := time.Now() // no time passes between the mint and the CONNECT
		fc1.accept(b, 0)
		fc1.waitSubscribed(t)
		expectState(t, states, Connecting, 1)
		expectState(t, states, Connected, 1)
		if tok, err := iothub.ParseSAS(string(fc1.connect.Password)); err != nil || !tok.Expiry.Equal(minted.Add(DefaultSASTTL)) {
			t.Errorf("first token: expiry %v (%v), want %v", tok.Expiry, err, minted.Add(DefaultSASTTL))
		}

		fc2 := b.nextWithin(t, DefaultSASTTL)
		renewAt := time.Duration(float64(DefaultSASTTL) * 0.8)
		if got := time.Since(minted); got != renewAt {
			t.Errorf("renewal CONNECT %v after the first token was minted, want exactly %v", got, renewAt)
		}
		if s := expectState(t, states, Connecting, 2); !s.Renewal {
			t.Error("second connection: Renewal false, want a renewal")
		}
		select {
		case <-fc1.closed:
			t.Error("the first connection closed before its renewal connected")
		default:
		}
		if tok, err := iothub.ParseSAS(string(fc2.connect.Password)); err != nil || !tok.Expiry.Equal(minted.Add(renewAt+DefaultSASTTL)) {
			t.Errorf("renewed token: expiry %v (%v), want %v", tok.Expiry, err, minted.Add(renewAt+DefaultSASTTL))
		}
		fc2.accept(b, 0)
		fc2.waitSubscribed(t)
		if s := expectState(t, states, Connected, 2); !s.Renewal {
			t.Error("renewed connection: Renewal false")
		}
		stop()
	})
}

// TestRenewalFlushesTheOldConnection: before the renewal's CONNECT, the
// session subscribes to methods again on the connection being replaced and
// waits for the SUBACK: the hub reads a connection's packets in order, so
// every reply written there has been read when the SUBACK comes back, and
// the hub closes that connection as soon as the renewal connects.
func TestRenewalFlushesTheOldConnection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newPipeBroker(t)
		stop := startSession(t, pipeConfig(b), echo)
		fc1 := b.next(t)
		fc1.accept(b, 0)
		fc1.waitSubscribed(t)

		fc2 := b.nextWithin(t, DefaultSASTTL)
		synctest.Wait()
		select {
		case s := <-fc1.subs:
			if len(s.Topics) != 1 || s.Topics[0] != iothub.MethodsSubscription {
				t.Errorf("flush SUBSCRIBE on the old connection: %v, want %s", s.Topics, iothub.MethodsSubscription)
			}
		default:
			t.Error("the renewal connected without a SUBSCRIBE round trip on the old connection first")
		}
		fc2.accept(b, 0)
		fc2.waitSubscribed(t)
		stop()
	})
}

// TestFixedTokenWarnsOnceBeforeExpiry: a SharedAccessSignature that expires
// in 100 s cannot be renewed; the session warns once, with the expiry, at
// exactly 80 % of its remaining lifetime, and does not reconnect.
func TestFixedTokenWarnsOnceBeforeExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newPipeBroker(t)
		cfg := pipeConfig(b)
		expiry := time.Now().Add(100 * time.Second)
		tok, err := iothub.Sign(cfg.Identity.Resource(), tvKey, "", expiry)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Identity.SharedAccessKey, cfg.Identity.SharedAccessSignature = "", tok
		sink := newLogSink()
		cfg.Logger = slog.New(sink)
		stop := startSession(t, cfg, echo)

		fc := b.next(t)
		connected := time.Now()
		fc.accept(b, 0)
		fc.waitSubscribed(t)
		warnings := func() []slog.Record {
			var ws []slog.Record
			for {
				select {
				case r := <-sink.ch:
					if r.Level == slog.LevelWarn {
						ws = append(ws, r)
					}
				default:
					return ws
				}
			}
		}

		time.Sleep(80*time.Second - time.Nanosecond)
		synctest.Wait()
		if ws := warnings(); len(ws) != 0 {
			t.Fatalf("%d warnings before 80 s: %v", len(ws), ws)
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		ws := warnings()
		if len(ws) != 1 {
			t.Fatalf("got %d warnings at 80 s, want 1: %v", len(ws), ws)
		}
		if got := ws[0].Time.Sub(connected); got != 80*time.Second {
			t.Errorf("warning %v after connecting, want exactly 80s", got)
		}
		if v, ok := attrValue(ws[0], logkey.Expiry); !ok || v.Kind() != slog.KindTime || !v.Time().Equal(expiry) {
			t.Errorf("warning %v: want %s=%v", ws[0], logkey.Expiry, expiry)
		}

		time.Sleep(time.Hour) // past the expiry: no second warning, no renewal
		synctest.Wait()
		if ws := warnings(); len(ws) != 0 {
			t.Errorf("%d more warnings after the first: %v", len(ws), ws)
		}
		select {
		case fc := <-b.conns:
			t.Errorf("a fixed token was renewed: CONNECT with %q", fc.connect.Password)
		default:
		}
		stop()
	})
}
