package device

import (
	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// connState is the life of one connection. It only moves forward.
type connState int

const (
	connConnecting connState = iota // dialling, CONNECT or SUBSCRIBE pending
	connUp                          // subscribed: replies may be published
	connDown                        // lost, failed or closed
)

// conn is one MQTT connection: one paho client, one password, one
// generation. Requests are tagged with the conn they arrived on.
// The mutable fields are guarded by Session.mu.
type conn struct {
	id     uint64
	client mqtt.Client

	state connState
	// succ is the connection that replaces this one in a planned SAS
	// renewal. Replies to requests that arrived here go to the last
	// connection of the succ chain.
	succ    *conn
	lostErr error
	settled chan struct{} // closed when state leaves connConnecting
	lost    chan struct{} // closed when state becomes connDown
}

func newConn(id uint64) *conn {
	return &conn{id: id, settled: make(chan struct{}), lost: make(chan struct{})}
}

// setUp marks c subscribed; it reports false if c was lost meanwhile.
func (s *Session) setUp(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.state != connConnecting {
		return false
	}
	c.state = connUp
	close(c.settled)
	return true
}

// setDown marks c lost (or failed) with err; only the first call counts.
func (s *Session) setDown(c *conn, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.state == connDown {
		return
	}
	if c.state == connConnecting {
		close(c.settled)
	}
	c.state = connDown
	c.lostErr = err
	close(c.lost)
}

// link makes next the planned successor of prev.
func (s *Session) link(prev, next *conn) {
	s.mu.Lock()
	prev.succ = next
	s.mu.Unlock()
}

// unlink undoes link after a failed renewal: prev is the tail again.
func (s *Session) unlink(prev *conn) {
	s.mu.Lock()
	prev.succ = nil
	s.mu.Unlock()
}

// replyTarget returns where a reply to a request that arrived on c goes:
// the last connection of c's succ chain if it is up. If that connection is
// still connecting, it returns a channel to wait on before asking again. If
// it is down, the reply has nowhere to go: both results are nil.
func (s *Session) replyTarget(c *conn) (*conn, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := c
	for t.succ != nil {
		t = t.succ
	}
	switch t.state {
	case connUp:
		return t, nil
	case connConnecting:
		return nil, t.settled
	}
	return nil, nil
}

func (s *Session) isUp(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return c != nil && c.state == connUp
}
