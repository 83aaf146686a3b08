package engine

import (
	"bytes"
	"container/list"
	"crypto/sha256"
	"sync"
	"sync/atomic"
	"time"
)

// Bounds of the memory of request ids (only calls of methods with side
// effects are remembered: Set.sideEffects). A reply payload is at most
// MaxReplyBytes (128 KB), so dedupMaxBytes keeps at least the 8 latest
// replies even when all are that large; with typical replies of a few
// hundred bytes, dedupMaxEntries is the bound that applies. Each MiB
// remembered costs about 5 MB of peak RSS under load (the heap grows to
// three times what it holds, defaultGCPercent 200): 8 MiB took the daemon
// from 28 to 68 MB at 128 calls of 8 KB in flight.
const (
	// dedupMaxEntries is how many finished calls are remembered at most.
	dedupMaxEntries = 4096
	// dedupMaxBytes is how many bytes of remembered reply payloads,
	// request ids and method names are kept at most; a call whose reply
	// has an After also counts its request payload (what After may hold).
	dedupMaxBytes = 1 << 20
)

// dedup remembers recent calls by request id, so that a request the hub
// delivers again is answered with the first delivery's reply instead of
// running its method again (Engine.Call; issue 17 item 4).
//
// A call is known by its key: the request id, the method name and the
// SHA-256 digest of the payload as received. The hub's request ids are
// short counters that may start again after a reconnect or a hub restart,
// so a request id alone could name a different call; with the method and
// payload in the key, a reused id with another method or payload is a new
// call. What remains: the same request id with the same method and the same
// payload bytes, within the window, after the hub restarted its counter, is
// taken for a duplicate and answered from memory without running.
//
// A call is remembered from its arrival until window after its reply was
// computed. A duplicate that arrives while the first call still runs waits
// for that call and gets the same reply; it honours nothing else (no
// context of its own): the first call is bounded by its own timeout.
//
// A reply's After (a detach method's command, to start once the reply is
// delivered) runs at most once for all deliveries together: every delivery
// gets an After that runs the first call's After unless one already did.
// So nothing starts twice, and when the first delivery's reply is lost (the
// connection dropped before it was published; After then never runs for
// it) the duplicate the hub delivers after the reconnect starts it.
//
// Every reply is remembered as it was, 429 (busy) and 503 (cancelled)
// included: the caller of the first delivery was told that outcome, and a
// duplicate that tried again could run a command whose reply the hub
// drops.
//
// Memory is bounded: at most dedupMaxEntries finished calls and
// dedupMaxBytes bytes, the oldest dropped first; calls older than the
// window are dropped lazily, on the next call. Calls in flight are not
// counted: they are bounded by the calls running at once. Nothing survives
// a restart of the daemon. Requests without a request id are never taken
// for duplicates.
type dedup struct {
	now        func() time.Time // the clock; tests replace it
	maxEntries int
	maxBytes   int

	mu      sync.Mutex
	calls   map[dedupKey]*dedupCall
	done    list.List // of *dedupCall that are finished, oldest first
	bytes   int       // the size of the calls in done
	waiting int       // duplicates waiting for a call in flight (tests)
}

// dedupKey names one call; see dedup.
type dedupKey struct {
	rid, method string
	digest      [sha256.Size]byte
}

// dedupCall is one remembered call. status and payload are set, and ready
// closed, once the first delivery's reply is known; payload is a copy the
// dedup owns.
type dedupCall struct {
	key     dedupKey
	ready   chan struct{}
	status  int
	payload []byte
	after   *onceFunc     // the first reply's After; nil when none
	size    int           // what the call counts against dedup.maxBytes
	at      time.Time     // when the reply was known
	elem    *list.Element // in dedup.done, nil while in flight
}

func newDedup() *dedup {
	return &dedup{
		now:        time.Now,
		maxEntries: dedupMaxEntries,
		maxBytes:   dedupMaxBytes,
		calls:      map[dedupKey]*dedupCall{},
	}
}

// do answers r: with the reply of an earlier call with the same key seen
// within window, else by running call. The call that runs gets its reply
// with its lease; a duplicate gets a copy of the status and payload. The
// After of each (when the first reply has one) runs the first reply's
// After at most once in all (see dedup). A window of zero or less, or an
// empty request id, always runs call.
func (d *dedup) do(r Request, window time.Duration, call func() Reply) Reply {
	if window <= 0 {
		d.forget()
		return call()
	}
	if r.RequestID == "" {
		return call()
	}
	key := dedupKey{rid: r.RequestID, method: r.Method, digest: sha256.Sum256(r.Payload)}
	d.mu.Lock()
	d.prune(window)
	if c := d.calls[key]; c != nil {
		return d.duplicate(c)
	}
	c := &dedupCall{key: key, ready: make(chan struct{})}
	d.calls[key] = c
	d.mu.Unlock()
	return d.run(c, len(r.Payload), call)
}

// duplicate answers a duplicate of c, waiting for c's reply while c is in
// flight. d.mu is held on entry and released.
func (d *dedup) duplicate(c *dedupCall) Reply {
	inFlight := c.elem == nil
	if inFlight {
		d.waiting++
	}
	d.mu.Unlock()
	<-c.ready
	if inFlight {
		d.mu.Lock()
		d.waiting--
		d.mu.Unlock()
	}
	return Reply{Status: c.status, Payload: bytes.Clone(c.payload), After: c.after.runner()}
}

// run runs call for c, the first delivery, and remembers a copy of its
// reply. Should call panic, the duplicates waiting get a 500 reply, the key
// is forgotten, and the panic goes on. reqSize is the size of the request's
// payload: while an After waits to run, it may hold that much.
func (d *dedup) run(c *dedupCall, reqSize int, call func() Reply) (rep Reply) {
	finished := false
	defer func() {
		if !finished {
			failed := errorReply(500, "internal error: the first delivery of this request failed")
			c.status, c.payload = failed.Status, failed.Payload
			d.mu.Lock()
			delete(d.calls, c.key)
			d.mu.Unlock()
			close(c.ready)
		}
	}()
	rep = call()
	finished = true
	c.status, c.payload = rep.Status, bytes.Clone(rep.Payload)
	c.size = len(c.payload) + len(c.key.rid) + len(c.key.method)
	if rep.After != nil {
		c.after = newOnceFunc(rep.After)
		rep.After = c.after.run
		c.size += reqSize
	}
	d.mu.Lock()
	c.at = d.now()
	close(c.ready)
	c.elem = d.done.PushBack(c)
	d.bytes += c.size
	d.evict()
	d.mu.Unlock()
	return rep
}

// prune drops the finished calls older than window. d.mu is held.
func (d *dedup) prune(window time.Duration) {
	now := d.now()
	for e := d.done.Front(); e != nil; e = d.done.Front() {
		if now.Sub(e.Value.(*dedupCall).at) < window {
			return
		}
		d.drop(e)
	}
}

// evict drops the oldest finished calls until the bounds hold. d.mu is
// held.
func (d *dedup) evict() {
	for d.done.Len() > 0 && (d.done.Len() > d.maxEntries || d.bytes > d.maxBytes) {
		d.drop(d.done.Front())
	}
}

// drop forgets the finished call at e. d.mu is held.
func (d *dedup) drop(e *list.Element) {
	c := d.done.Remove(e).(*dedupCall)
	d.bytes -= c.size
	delete(d.calls, c.key)
}

// forget drops every finished call, once the window is off.
func (d *dedup) forget() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for d.done.Len() > 0 {
		d.drop(d.done.Front())
	}
}

// onceFunc runs a function at most once, however often and from however
// many goroutines run is called, and lets go of it once it has run.
type onceFunc struct{ f atomic.Pointer[func()] }

func newOnceFunc(f func()) *onceFunc {
	o := &onceFunc{}
	o.f.Store(&f)
	return o
}

// run runs the function unless it has run already.
func (o *onceFunc) run() {
	if f := o.f.Swap(nil); f != nil {
		(*f)()
	}
}

// runner returns o.run, or nil for a nil o (a reply without After).
func (o *onceFunc) runner() func() {
	if o == nil {
		return nil
	}
	return o.run
}
