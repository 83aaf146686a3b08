package device

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/methodd/methodd/iothub"
)

// Reported-properties patches against the pipe broker, inside synctest
// bubbles: no time passes unless a test moves the fake clock, so "at once"
// and "exactly at the deadline" are checked exactly.

// twinSession runs a session connected to a pipe broker until the test
// ends; setup configures the broker's side of the connection (twin answers,
// refused filters) before its CONNACK. It returns once the session is
// Connected.
func twinSession(t *testing.T, setup func(*fakeConn)) (s *Session, b *fakeBroker, fc *fakeConn, states chan timedState, stop func()) {
	t.Helper()
	b = newPipeBroker(t)
	states = make(chan timedState, 64)
	cfg := pipeConfig(b)
	cfg.OnState = stateLog(states)
	s, err := New(cfg, echo)
	if err != nil {
		t.Fatal(err)
	}
	stop = runSession(t, s)
	fc = b.next(t)
	if setup != nil {
		setup(fc)
	}
	fc.accept(b, 0)
	fc.waitSubscribed(t)
	expectState(t, states, Connecting, 1)
	expectState(t, states, Connected, 1)
	return s, b, fc, states, stop
}

// reportResult is what one ReportProperties call returned.
type reportResult struct {
	version int64
	err     error
}

// reportAsync calls ReportProperties in a goroutine of the bubble.
func reportAsync(ctx context.Context, s *Session, patch string) <-chan reportResult {
	ch := make(chan reportResult, 1)
	go func() {
		v, err := s.ReportProperties(ctx, []byte(patch))
		ch <- reportResult{v, err}
	}()
	return ch
}

// pendingTwin is the number of twin requests waiting for an answer.
func pendingTwin(s *Session) int {
	s.twin.mu.Lock()
	defer s.twin.mu.Unlock()
	return len(s.twin.pending)
}

// noMoreSubscribes fails if the client sent a SUBSCRIBE not read yet.
func noMoreSubscribes(t *testing.T, fc *fakeConn) {
	t.Helper()
	synctest.Wait()
	select {
	case sub := <-fc.subs:
		t.Errorf("unexpected SUBSCRIBE %v", sub.Topics)
	default:
	}
}

// expectTwinSubscribe checks the next SUBSCRIBE is the twin responses'
// filter alone, at QoS 0.
func expectTwinSubscribe(t *testing.T, fc *fakeConn) {
	t.Helper()
	sub := fc.waitSubscribed(t)
	if len(sub.Topics) != 1 || sub.Topics[0] != iothub.TwinResponseSubscription || sub.Qoss[0] != 0 {
		t.Fatalf("subscribe: got %v qos %v, want [%s] qos [0]", sub.Topics, sub.Qoss, iothub.TwinResponseSubscription)
	}
}

// expectPatch reads the next PUBLISH, checks it is a reported patch at
// QoS 0 with body want, and returns its $rid.
func expectPatch(t *testing.T, fc *fakeConn, want string) string {
	t.Helper()
	p := fc.reply(t)
	op, rid, _, err := iothub.ParseTwinRequestTopic(p.TopicName)
	if err != nil || op != iothub.TwinPatchReported || p.TopicName != iothub.TwinReportedTopic(rid) {
		t.Fatalf("publish on %q (%v): want %s", p.TopicName, err, iothub.TwinReportedTopic("{rid}"))
	}
	if p.Qos != 0 {
		t.Errorf("patch QoS %d, want 0", p.Qos)
	}
	if string(p.Payload) != want {
		t.Errorf("patch body %s, want %s", p.Payload, want)
	}
	return rid
}

// TestReportPropertiesReturnsVersion: the first twin request subscribes to
// twin responses (not the connect); concurrent requests share that one
// SUBSCRIBE, each publishes its patch with its own $rid, and each gets the
// $version of the answer carrying its $rid, whatever the order of the
// answers. Answers to other $rids are ignored.
func TestReportPropertiesReturnsVersion(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _, fc, _, stop := twinSession(t, nil)
		noMoreSubscribes(t, fc) // connecting subscribed to methods only
		ctx := t.Context()

		first := reportAsync(ctx, s, `{"a":1}`)
		expectTwinSubscribe(t, fc)
		ridA := expectPatch(t, fc, `{"a":1}`)
		second := reportAsync(ctx, s, `{"b":2}`)
		ridB := expectPatch(t, fc, `{"b":2}`)
		noMoreSubscribes(t, fc) // the second request reused the subscription
		if ridA == ridB {
			t.Fatalf("both requests used $rid %s", ridA)
		}

		fc.mustRequest(t, iothub.TwinResponseTopic(204, "no-such-rid", 99), nil)
		fc.mustRequest(t, iothub.TwinResponseTopic(204, ridB, 8), nil)
		if r := <-second; r.err != nil || r.version != 8 {
			t.Errorf("second report: got %d, %v; want version 8", r.version, r.err)
		}
		synctest.Wait()
		select {
		case r := <-first:
			t.Fatalf("first report returned %d, %v on another $rid's answer", r.version, r.err)
		default:
		}
		fc.mustRequest(t, iothub.TwinResponseTopic(204, ridA, 7), nil)
		if r := <-first; r.err != nil || r.version != 7 {
			t.Errorf("first report: got %d, %v; want version 7", r.version, r.err)
		}
		if n := pendingTwin(s); n != 0 {
			t.Errorf("%d twin requests still pending, want 0", n)
		}

		// The session answers methods as before.
		fc.mustRequest(t, iothub.MethodRequestTopic("m", "1"), []byte(`{}`))
		if p := fc.reply(t); p.TopicName != iothub.MethodResponseTopic(200, "1") {
			t.Errorf("method reply on %q, want %q", p.TopicName, iothub.MethodResponseTopic(200, "1"))
		}
		stop()
	})
}

// TestReportPropertiesErrorStatus: any status but 204 is a
// *TwinStatusError with the status, and with the body's errorCode and
// message when the body is the hub's JSON error.
func TestReportPropertiesErrorStatus(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		want   TwinStatusError
	}{
		{"400 with error body", 400, `{"errorCode":400004,"trackingId":"t-1","message":"bad value","timestampUtc":"2026-01-01T00:00:00.0000000Z"}`,
			TwinStatusError{Status: 400, Code: 400004, Message: "bad value", TrackingID: "t-1"}},
		{"429 without body", 429, "", TwinStatusError{Status: 429}},
		{"503 with text body", 503, "busy", TwinStatusError{Status: 503}},
		{"200 is not a patch success", 200, "", TwinStatusError{Status: 200}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s, _, _, _, stop := twinSession(t, func(fc *fakeConn) {
					fc.twin = func(string, []byte) (int, int64, []byte, bool) { return tc.status, 0, []byte(tc.body), true }
				})
				v, err := s.ReportProperties(t.Context(), []byte(`{"x":1}`))
				var se *TwinStatusError
				if !errors.As(err, &se) {
					t.Fatalf("got %d, %v; want a *TwinStatusError", v, err)
				}
				if *se != tc.want || v != 0 {
					t.Errorf("got %d, %+v; want 0, %+v", v, *se, tc.want)
				}
				if n := pendingTwin(s); n != 0 {
					t.Errorf("%d twin requests still pending, want 0", n)
				}
				stop()
			})
		})
	}
}

// TestReportPropertiesUnansweredEndsAtDeadline: a patch the hub never
// answers fails with the ctx's error exactly at its deadline, leaves no
// waiter behind, and the connection stays up.
func TestReportPropertiesUnansweredEndsAtDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _, fc, states, stop := twinSession(t, nil) // fc.twin nil: never answers
		const bound = 10 * time.Second
		ctx, cancel := context.WithTimeout(t.Context(), bound)
		defer cancel()
		start := time.Now()
		v, err := s.ReportProperties(ctx, []byte(`{}`))
		if !errors.Is(err, context.DeadlineExceeded) || v != 0 {
			t.Fatalf("got %d, %v; want context.DeadlineExceeded", v, err)
		}
		if d := time.Since(start); d != bound {
			t.Errorf("returned after %v, want exactly %v", d, bound)
		}
		expectTwinSubscribe(t, fc)
		expectPatch(t, fc, `{}`)
		if n := pendingTwin(s); n != 0 {
			t.Errorf("%d twin requests still pending, want 0", n)
		}
		synctest.Wait()
		select {
		case st := <-states:
			t.Errorf("state change %v after an unanswered twin request, want none", st.State)
		default:
		}
		stop()
	})
}

// TestReportPropertiesNotConnected: without a connection up, before Run,
// between connections and after Run, ReportProperties fails at once with
// ErrNotConnected and sends nothing.
func TestReportPropertiesNotConnected(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newPipeBroker(t)
		states := make(chan timedState, 64)
		cfg := pipeConfig(b)
		cfg.OnState = stateLog(states)
		s, err := New(cfg, echo)
		if err != nil {
			t.Fatal(err)
		}
		notConnected := func(when string) {
			t.Helper()
			start := time.Now()
			if v, err := s.ReportProperties(t.Context(), []byte(`{}`)); !errors.Is(err, ErrNotConnected) || v != 0 {
				t.Errorf("%s: got %d, %v; want ErrNotConnected", when, v, err)
			}
			if d := time.Since(start); d != 0 {
				t.Errorf("%s: returned after %v, want at once", when, d)
			}
		}
		notConnected("before Run")

		stop := runSession(t, s)
		fc := b.next(t)
		fc.accept(b, 0)
		fc.waitSubscribed(t)
		expectState(t, states, Connecting, 1)
		expectState(t, states, Connected, 1)
		fc.conn.Close() // the network drops
		expectState(t, states, Disconnected, 1)
		notConnected("while disconnected")
		stop()
		notConnected("after Run")
		select {
		case p := <-fc.pubs:
			t.Errorf("published %q while not connected", p.TopicName)
		default:
		}
	})
}

// TestReportPropertiesConnectionLost: a connection lost while a patch
// waits for its answer fails the call with ErrConnectionLost at once and
// leaves no waiter behind.
func TestReportPropertiesConnectionLost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _, fc, _, stop := twinSession(t, nil) // never answers
		res := reportAsync(t.Context(), s, `{"y":2}`)
		expectTwinSubscribe(t, fc)
		expectPatch(t, fc, `{"y":2}`)
		lostAt := time.Now()
		fc.conn.Close()
		r := <-res
		if !errors.Is(r.err, ErrConnectionLost) || r.version != 0 {
			t.Fatalf("got %d, %v; want ErrConnectionLost", r.version, r.err)
		}
		if d := time.Since(lostAt); d != 0 {
			t.Errorf("returned %v after the loss, want at once", d)
		}
		if n := pendingTwin(s); n != 0 {
			t.Errorf("%d twin requests still pending, want 0", n)
		}
		stop()
	})
}

// TestTwinRefusedLeavesMethodsWorking: a hub that refuses the twin
// response filter (SUBACK 0x80) fails twin requests with ErrTwinRefused,
// asked once per connection, while the connection stays up and method
// calls are answered; the next connection asks again.
func TestTwinRefusedLeavesMethodsWorking(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, b, fc, states, stop := twinSession(t, func(fc *fakeConn) {
			fc.refuse = map[string]bool{iothub.TwinResponseSubscription: true}
		})
		for i := range 2 {
			if v, err := s.ReportProperties(t.Context(), []byte(`{}`)); !errors.Is(err, ErrTwinRefused) || v != 0 {
				t.Fatalf("report %d: got %d, %v; want ErrTwinRefused", i, v, err)
			}
		}
		expectTwinSubscribe(t, fc)
		noMoreSubscribes(t, fc) // the refusal holds for the connection
		select {
		case p := <-fc.pubs:
			t.Errorf("published %q after the twin subscription was refused", p.TopicName)
		default:
		}
		fc.mustRequest(t, iothub.MethodRequestTopic("m", "1"), []byte(`{"k":1}`))
		if p := fc.reply(t); p.TopicName != iothub.MethodResponseTopic(200, "1") || string(p.Payload) != `{"k":1}` {
			t.Errorf("method reply %q %s, want %q {\"k\":1}", p.TopicName, p.Payload, iothub.MethodResponseTopic(200, "1"))
		}
		synctest.Wait()
		select {
		case st := <-states:
			t.Fatalf("state change %v after the refusal, want the connection to stay up", st.State)
		default:
		}

		fc.conn.Close()
		expectState(t, states, Disconnected, 1)
		fc2 := b.nextWithin(t, time.Hour)
		fc2.twin = func(string, []byte) (int, int64, []byte, bool) { return 204, 3, nil, true }
		fc2.accept(b, 0)
		fc2.waitSubscribed(t)
		expectState(t, states, Connecting, 2)
		expectState(t, states, Connected, 2)
		if v, err := s.ReportProperties(t.Context(), []byte(`{}`)); err != nil || v != 3 {
			t.Errorf("on the next connection: got %d, %v; want version 3", v, err)
		}
		expectTwinSubscribe(t, fc2)
		stop()
	})
}
