package localhub

import "sync"

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
	mu      sync.Mutex
	pending map[string]*call // rid → call
}

func newCalls() *calls {
	return &calls{pending: map[string]*call{}}
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
// the identity that received the request. Otherwise the reply is not
// delivered and the error says why: ErrUnknownRequestID for an unknown or
// finished rid (a late reply after a timeout, a duplicate), ErrForeignReply
// for a reply from another identity (the call keeps waiting).
func (c *calls) resolve(clientID, rid string, r reply) error {
	c.mu.Lock()
	k, ok := c.pending[rid]
	if ok && k.clientID == clientID {
		delete(c.pending, rid)
	}
	c.mu.Unlock()
	switch {
	case !ok:
		return ErrUnknownRequestID
	case k.clientID != clientID:
		return ErrForeignReply
	}
	k.ch <- r
	return nil
}
