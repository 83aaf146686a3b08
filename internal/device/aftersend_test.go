package device

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/methodd/methodd/internal/logkey"
	"github.com/methodd/methodd/iothub"
)

// TestAfterSendRunsOnceTheReplyIsPublished: AfterSend runs once per
// published reply, after Release, and while it runs the broker already has
// the reply (it does not wait for AfterSend); a reply replaced because it
// is too large does not run it.
func TestAfterSendRunsOnceTheReplyIsPublished(t *testing.T) {
	b := newFakeBroker(t)
	var mu sync.Mutex
	var events []string
	record := func(e string) {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
	}
	var conn atomic.Pointer[fakeConn] // set before the first request
	afterDone := make(chan error, 4)
	stop := startSession(t, testConfig(b, "device-1", ""), handlerFunc(func(_ context.Context, r Request) Response {
		payload := []byte(`"` + r.RID + `"`)
		if r.Method == "huge" {
			payload = []byte(`"` + strings.Repeat("x", iothub.MaxPayloadBytes) + `"`)
		}
		return Response{Status: 202, Payload: payload,
			Release: func() { record("release " + r.RID) },
			AfterSend: func() {
				record("after " + r.RID)
				// The reply is at the broker while AfterSend runs.
				select {
				case p := <-conn.Load().pubs:
					if want := "$iothub/methods/res/202/?$rid=" + r.RID; p.TopicName != want {
						afterDone <- &topicError{got: p.TopicName, want: want}
						return
					}
					afterDone <- nil
				case <-time.After(20 * time.Second):
					afterDone <- context.DeadlineExceeded
				}
			}}
	}))
	fc := b.next(t)
	conn.Store(fc)
	fc.accept(b, 0)
	fc.waitSubscribed(t)

	fc.mustRequest(t, "$iothub/methods/POST/later/?$rid=1", nil)
	select {
	case err := <-afterDone:
		if err != nil {
			t.Fatalf("AfterSend ran before the reply reached the broker: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("AfterSend did not run within 20s of the request")
	}
	// A reply over the limit is replaced by a 500 and runs no AfterSend.
	fc.mustRequest(t, "$iothub/methods/POST/huge/?$rid=2", nil)
	if p := fc.reply(t); p.TopicName != "$iothub/methods/res/500/?$rid=2" {
		t.Fatalf("got %q, want the 500 of a reply too large", p.TopicName)
	}
	stop() // the drain waits for every call, AfterSend included
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"release 1", "after 1"}; strings.Join(events, ",") != strings.Join(want, ",") {
		t.Errorf("events: got %q, want %q", events, want)
	}
}

type topicError struct{ got, want string }

func (e *topicError) Error() string { return "reply on " + e.got + ", want " + e.want }

// TestAfterSendNeverRunsForADroppedReply: a reply whose connection was lost
// is dropped, and its AfterSend never runs; the next call's does.
func TestAfterSendNeverRunsForADroppedReply(t *testing.T) {
	b := newFakeBroker(t)
	cfg := testConfig(b, "device-1", "")
	sink := newLogSink()
	cfg.Logger = slog.New(sink)
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	afters := make(chan string, 4)
	stop := startSession(t, cfg, handlerFunc(func(_ context.Context, r Request) Response {
		if r.Method == "slow" {
			started <- struct{}{}
			<-release
		}
		return Response{Status: 202, Payload: []byte(`"` + r.RID + `"`), AfterSend: func() { afters <- r.RID }}
	}))
	fc1 := b.next(t)
	fc1.accept(b, 0)
	fc1.waitSubscribed(t)
	fc1.mustRequest(t, "$iothub/methods/POST/slow/?$rid=old", nil)
	<-started
	fc1.conn.Close() // the network drops
	fc2 := b.next(t)
	fc2.accept(b, 0)
	fc2.waitSubscribed(t)
	close(release)
	sink.waitFor(t, slog.LevelWarn, map[string]string{logkey.RequestID: "old", logkey.Reason: ""})
	fc2.mustRequest(t, "$iothub/methods/POST/fast/?$rid=new", nil)
	if p := fc2.reply(t); p.TopicName != "$iothub/methods/res/202/?$rid=new" {
		t.Fatalf("got %q, want the new call's reply", p.TopicName)
	}
	stop() // the drain waits for every call, AfterSend included
	close(afters)
	var got []string
	for rid := range afters {
		got = append(got, rid)
	}
	if len(got) != 1 || got[0] != "new" {
		t.Errorf("AfterSend ran for %q, want only for the published reply (new)", got)
	}
}
