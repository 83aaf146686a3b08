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
}

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
	p.notifyLocked()
	return s
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
