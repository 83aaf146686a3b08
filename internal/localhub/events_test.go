package localhub_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/methodd/methodd/internal/localhub"
)

// eventLog records a hub's events (Options.OnEvent) for tests to wait on.
type eventLog struct {
	mu      sync.Mutex
	all     []localhub.Event
	changed chan struct{} // closed and replaced on every event
}

func newEventLog() *eventLog { return &eventLog{changed: make(chan struct{})} }

// record is the hub's OnEvent: it never blocks.
func (l *eventLog) record(e localhub.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all = append(l.all, e)
	close(l.changed)
	l.changed = make(chan struct{})
}

// mark is the position after the events recorded so far: wait(mark, ...)
// considers only later ones.
func (l *eventLog) mark() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.all)
}

// since returns the events recorded at or after position from.
func (l *eventLog) since(from int) ([]localhub.Event, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]localhub.Event(nil), l.all[from:]...), l.changed
}

// wait returns the first event at or after position from that matches,
// failing t if none is recorded within waitFor.
func (l *eventLog) wait(t testing.TB, from int, what string, match func(localhub.Event) bool) localhub.Event {
	t.Helper()
	deadline := time.NewTimer(waitFor)
	defer deadline.Stop()
	for {
		evs, changed := l.since(from)
		for _, e := range evs {
			if match(e) {
				return e
			}
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("timed out after %s waiting for %s; events since: %v", waitFor, what, evs)
			return localhub.Event{}
		}
	}
}

// none fails t if an event at or after position from matches.
func (l *eventLog) none(t testing.TB, from int, what string, match func(localhub.Event) bool) {
	t.Helper()
	evs, _ := l.since(from)
	for _, e := range evs {
		if match(e) {
			t.Errorf("unexpected %s: %+v", what, e)
		}
	}
}

// is matches events of kind about clientID.
func is(kind localhub.EventKind, clientID string) func(localhub.Event) bool {
	return func(e localhub.Event) bool { return e.Kind == kind && e.ClientID == clientID }
}

// isErr matches events of kind about clientID whose Err is target.
func isErr(kind localhub.EventKind, clientID string, target error) func(localhub.Event) bool {
	return func(e localhub.Event) bool {
		return e.Kind == kind && e.ClientID == clientID && errors.Is(e.Err, target)
	}
}

// TestEventKindString: every kind has its own name; other values are marked.
func TestEventKindString(t *testing.T) {
	seen := map[string]localhub.EventKind{}
	for k := localhub.EventConnRefused; k <= localhub.EventReplyDropped; k++ {
		s := k.String()
		if prev, dup := seen[s]; dup || s == "" {
			t.Errorf("kind %d named %q, as kind %d", k, s, prev)
		}
		seen[s] = k
	}
	if got, want := localhub.EventKind(0).String(), "EventKind(0)"; got != want {
		t.Errorf("zero kind: %q, want %q", got, want)
	}
	if got, want := localhub.EventDisconnected.String(), "disconnected"; got != want {
		t.Errorf("EventDisconnected: %q, want %q", got, want)
	}
}
