package localhub

import (
	"log/slog"
	"sync"
)

// reply is a device's answer to a method request.
type reply struct {
	status  int
	payload []byte
}

// call is a pending invocation waiting for its reply.
type call struct {
	clientID string     // the identity the request was sent to
	ch       chan reply // buffered (1): resolve never blocks
}

// calls correlates replies with pending invocations by $rid and identity.
type calls struct {
	log     *slog.Logger
	mu      sync.Mutex
	pending map[string]*call // rid → call
}

func newCalls(log *slog.Logger) *calls {
	return &calls{log: log, pending: map[string]*call{}}
}

// add registers a pending call for rid.
func (c *calls) add(rid, clientID string) *call {
	k := &call{clientID: clientID, ch: make(chan reply, 1)}
	c.mu.Lock()
	c.pending[rid] = k
	c.mu.Unlock()
	return k
}

// drop forgets rid (timeout, cancellation, send failure).
func (c *calls) drop(rid string) {
	c.mu.Lock()
	delete(c.pending, rid)
	c.mu.Unlock()
}

// resolve hands a reply to the call waiting for rid, if the reply comes from
// the identity that received the request. Replies for unknown or finished
// rids (late replies after a timeout) and replies from another identity are
// dropped and logged; the call keeps waiting in the latter case.
func (c *calls) resolve(clientID, rid string, r reply) {
	c.mu.Lock()
	k, ok := c.pending[rid]
	if ok && k.clientID == clientID {
		delete(c.pending, rid)
	}
	c.mu.Unlock()
	switch {
	case !ok:
		c.log.Warn("method reply dropped", "clientId", clientID, "rid", rid, "status", r.status, "reason", "unknown or expired $rid")
	case k.clientID != clientID:
		c.log.Warn("method reply dropped", "clientId", clientID, "rid", rid, "status", r.status, "reason", "$rid belongs to another identity")
	default:
		k.ch <- r
	}
}
