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

// presence tracks which identities are connected and subscribed to methods.
// Waiters block on changed, which is closed and replaced on every change.
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

// set records s as the live session of its client id, replacing any other.
func (p *presence) set(id string, s *session) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.live[id] = s
	p.notifyLocked()
}

// remove forgets cl's session if it is still the live one and returns it.
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

// setSubscribed marks whether cl (if live) holds the methods subscription.
func (p *presence) setSubscribed(cl *mqtt.Client, on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s, ok := p.live[cl.ID]; ok && s.cl == cl && s.subscribed != on {
		s.subscribed = on
		p.notifyLocked()
	}
}

// client returns the live client of id, if any.
func (p *presence) client(id string) *mqtt.Client {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s, ok := p.live[id]; ok {
		return s.cl
	}
	return nil
}

// ready returns the client of id if it is connected and subscribed.
func (p *presence) ready(id string) (*mqtt.Client, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s, ok := p.live[id]; ok && s.subscribed && !s.cl.Closed() {
		return s.cl, nil
	}
	return nil, p.changed
}

// await waits up to timeout for id to be connected and subscribed; it gives
// up early when ctx or stop is done. A zero timeout checks once.
func (p *presence) await(ctx context.Context, id string, timeout time.Duration, stop <-chan struct{}) *mqtt.Client {
	cl, changed := p.ready(id)
	if cl != nil || timeout <= 0 {
		return cl
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case <-changed:
		case <-t.C:
			return nil
		case <-ctx.Done():
			return nil
		case <-stop:
			return nil
		}
		if cl, changed = p.ready(id); cl != nil {
			return cl
		}
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
