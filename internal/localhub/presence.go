package localhub

import (
	"context"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
)

// session is one live MQTT connection of an identity.
type session struct {
	cl         *mqtt.Client
	subscribed bool        // holds $iothub/methods/POST/# (own or inherited)
	taking     bool        // taking over the identity; known only at its CONNACK (set)
	timer      *time.Timer // disconnects the client when its token expires
	// connacked is closed once the CONNACK is written (or the session
	// ends): nothing may be written to the client before its CONNACK.
	connacked chan struct{}
	ackOnce   sync.Once
}

func newSession(cl *mqtt.Client, subscribed bool) *session {
	return &session{cl: cl, subscribed: subscribed, connacked: make(chan struct{})}
}

func (s *session) ack() { s.ackOnce.Do(func() { close(s.connacked) }) }

// takeoverWait bounds how long a call waits for a connection that is
// taking over a live session to get its CONNACK (normally microseconds).
const takeoverWait = 5 * time.Second

// presence tracks which identities are connected and subscribed to methods.
// Waiters block on changed, which is closed and replaced on every change.
//
// A new connection of a live identity kicks the old one before the broker
// writes its own CONNACK. In between, the identity is "taking over": calls
// wait for the new connection rather than fail with 404103, so that a device
// renewing its SAS (make before break, §7.1) is never reported offline.
type presence struct {
	mu      sync.Mutex
	live    map[string]*session // client id → live session
	changed chan struct{}
}

func newPresence() *presence {
	return &presence{live: map[string]*session{}, changed: make(chan struct{})}
}

// notifyLocked wakes every waiter. Callers hold p.mu.
func (p *presence) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// takeover makes cl, authenticated and about to replace its identity's live
// session, the live one as taking over, and returns the client it replaces
// (nil when there is none: a first connection makes nobody wait). The
// replaced session is ended here, as remove would end it, since its
// OnDisconnect no longer finds it live: its expiry timer stops and writers
// waiting for its CONNACK are released (their write then fails and they
// look again).
func (p *presence) takeover(cl *mqtt.Client) *mqtt.Client {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.live[cl.ID]
	if !ok || s.cl == cl {
		return nil
	}
	if s.timer != nil {
		s.timer.Stop()
	}
	s.ack()
	next := newSession(cl, false)
	next.taking = true
	p.live[cl.ID] = next
	return s.cl
}

// set records s as the live session of its client id, replacing any other
// (ending a takeover by s's client).
func (p *presence) set(id string, s *session) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.live[id] = s
	p.notifyLocked()
}

// remove forgets cl's session if it is still the live one (taking over or
// not) and returns it.
func (p *presence) remove(cl *mqtt.Client) *session {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.live[cl.ID]
	if !ok || s.cl != cl {
		return nil
	}
	delete(p.live, cl.ID)
	s.ack() // release writers waiting for a CONNACK that will never come
	p.notifyLocked()
	return s
}

// connacked marks cl's CONNACK as written.
func (p *presence) connacked(cl *mqtt.Client) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s, ok := p.live[cl.ID]; ok && s.cl == cl {
		s.ack()
	}
}

// connackWritten returns a channel closed once cl's CONNACK is written or
// its session has ended (closed at once when cl is not the live client).
func (p *presence) connackWritten(cl *mqtt.Client) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s, ok := p.live[cl.ID]; ok && s.cl == cl {
		return s.connacked
	}
	done := make(chan struct{})
	close(done)
	return done
}

// arm attaches the token-expiry timer to cl's live session; when cl is no
// longer the live one (kicked meanwhile) the timer is stopped instead.
func (p *presence) arm(cl *mqtt.Client, t *time.Timer) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s, ok := p.live[cl.ID]; ok && s.cl == cl {
		s.timer = t
		return
	}
	t.Stop()
}

// setSubscribed marks whether cl holds the methods subscription and
// reports whether cl is its identity's live client; a client that is not
// live is left alone.
func (p *presence) setSubscribed(cl *mqtt.Client, on bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.live[cl.ID]
	if !ok || s.cl != cl {
		return false
	}
	if s.subscribed != on {
		s.subscribed = on
		p.notifyLocked()
	}
	return true
}

// ready returns the client of id if it is connected, subscribed and not
// taking over; otherwise the channel that signals the next change, and
// whether a takeover is in progress (by a client not closed since).
func (p *presence) ready(id string) (*mqtt.Client, <-chan struct{}, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.live[id]
	switch {
	case !ok || s.cl.Closed():
		return nil, p.changed, false
	case s.taking:
		return nil, p.changed, true
	case s.subscribed:
		return s.cl, nil, false
	}
	return nil, p.changed, false
}

// await waits up to timeout for id to be connected and subscribed; a
// takeover in progress extends the wait to takeoverWait from when it was
// first seen. It gives up early when ctx or stop is done. A zero timeout
// with no takeover checks once.
func (p *presence) await(ctx context.Context, id string, timeout time.Duration, stop <-chan struct{}) *mqtt.Client {
	cl, changed, taking := p.ready(id)
	if cl != nil || (timeout <= 0 && !taking) {
		return cl
	}
	deadline := time.Now().Add(timeout)
	var takeoverEnd time.Time
	for {
		end := deadline
		if taking {
			if takeoverEnd.IsZero() {
				takeoverEnd = time.Now().Add(takeoverWait)
			}
			end = later(deadline, takeoverEnd)
		}
		left := time.Until(end)
		if left <= 0 {
			return nil
		}
		t := time.NewTimer(left)
		select {
		case <-changed:
		case <-t.C:
		case <-ctx.Done():
		case <-stop:
		}
		t.Stop()
		if ctx.Err() != nil || isDone(stop) {
			return nil
		}
		if cl, changed, taking = p.ready(id); cl != nil {
			return cl
		}
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func isDone(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// stopTimers stops the expiry timers of all live sessions (for Close).
func (p *presence) stopTimers() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.live {
		if s.timer != nil {
			s.timer.Stop()
		}
	}
}

// client returns id's live client, nil when it has none
// (its CONNACK may not be out yet: wait on connackWritten before writing).
func (p *presence) client(id string) *mqtt.Client {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s, ok := p.live[id]; ok && !s.cl.Closed() {
		return s.cl
	}
	return nil
}
