package device

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/methodd/methodd/internal/logkey"
	"github.com/methodd/methodd/iothub"
)

// Errors of ReportProperties that callers branch on.
var (
	// ErrNotConnected: the session has no connection up; nothing was sent.
	// Report again once the session is Connected.
	ErrNotConnected = errors.New("device: not connected")
	// ErrConnectionLost: the connection went down before the hub answered;
	// the patch may or may not have been applied.
	ErrConnectionLost = errors.New("device: connection lost before the hub answered")
	// ErrTwinRefused: the hub refused the subscription to twin responses
	// (SUBACK 0x80) on the current connection; twin requests fail on it
	// until the session connects again. Method calls are not affected.
	ErrTwinRefused = errors.New("device: the hub refused the twin response subscription")
)

// twinPatchOK is the status of a successful reported-properties patch
// (fleet reference §1.3).
const twinPatchOK = 204

// TwinStatusError is a twin request the hub answered with a status other
// than success. Code, Message and TrackingID come from the response body
// when it is the hub's JSON error (fleet reference §1.5); they are empty
// otherwise.
type TwinStatusError struct {
	Status     int
	Code       int
	Message    string
	TrackingID string
}

func (e *TwinStatusError) Error() string {
	s := "device: twin request failed with status " + strconv.Itoa(e.Status)
	if e.Code != 0 {
		s += " (" + strconv.Itoa(e.Code) + ")"
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// ReportProperties sends patch (a JSON object, merged into the twin's
// reported properties: fleet reference §1.3) on the current connection and
// returns the reported $version the hub answered with (0 if the answer
// carried none).
//
// On a connection's first twin request it subscribes to twin responses
// ($iothub/twin/res/#, QoS 0); connecting never does, so a hub that refuses
// twins delays no method call. The patch goes out at QoS 0 with a fresh
// $rid, and the answer is matched by that $rid. The wait is bounded by ctx
// only: pass a deadline.
//
// Errors: ErrNotConnected (at once, when no connection is up),
// ErrTwinRefused, ErrConnectionLost, a *TwinStatusError for any status but
// 204, or ctx's error (errors.Is). Safe for concurrent use.
func (s *Session) ReportProperties(ctx context.Context, patch []byte) (version int64, err error) {
	c, err := s.twinReady(ctx)
	if err != nil {
		return 0, err
	}
	rid, answer := s.twin.register()
	defer s.twin.unregister(rid)
	topic := iothub.TwinReportedTopic(rid)
	tok := c.client.Publish(topic, 0, false, patch)
	if err := s.twinWait(ctx, c, tok); err != nil {
		return 0, fmt.Errorf("device: publish %s: %w", topic, err)
	}
	select {
	case r := <-answer:
		return r.result()
	case <-ctx.Done():
		return 0, fmt.Errorf("device: no twin response for $rid %s: %w", rid, ctx.Err())
	case <-c.lost:
		return 0, s.connLost(c)
	}
}

// twinState is the session's twin request state. Its fields are guarded by
// its own mutex, never held with Session.mu.
type twinState struct {
	mu      sync.Mutex
	cur     *conn    // the newest connection that got its SUBACK
	sub     *twinSub // cur's twin-response subscription; nil until first used
	lastRID uint64   // $rid of the last request: small integers, as the C SDK
	pending map[string]chan twinResponse
}

// twinSub is one connection's subscription to twin responses, made by the
// first request that needs it while later ones wait for its result.
type twinSub struct {
	done chan struct{} // closed once err is set
	err  error
}

// twinResponse is one answer of the hub on the twin response topic.
type twinResponse struct {
	status  int
	version int64
	body    []byte
}

// result turns a reported-patch response into ReportProperties' result.
func (r twinResponse) result() (int64, error) {
	if r.status == twinPatchOK {
		return r.version, nil
	}
	e := &TwinStatusError{Status: r.status}
	var body iothub.TwinError
	if json.Unmarshal(r.body, &body) == nil {
		e.Code, e.Message, e.TrackingID = body.ErrorCode, body.Message, body.TrackingID
	}
	return 0, e
}

// setCurrent makes c, which just got its SUBACK, the connection twin
// requests use. It has no twin subscription yet.
func (t *twinState) setCurrent(c *conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cur, t.sub = c, nil
}

// acquire returns the current connection and its subscription, creating
// the subscription when there is none: owner then reports that the caller
// must make it and settle it.
func (t *twinState) acquire() (c *conn, sub *twinSub, owner bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cur == nil {
		return nil, nil, false
	}
	if t.sub == nil {
		t.sub, owner = &twinSub{done: make(chan struct{})}, true
	}
	return t.cur, t.sub, owner
}

// settle records the outcome of sub. A failure other than a refusal is
// forgotten, so that the next request subscribes again.
func (t *twinState) settle(sub *twinSub, err error) {
	t.mu.Lock()
	sub.err = err
	if err != nil && !errors.Is(err, ErrTwinRefused) && t.sub == sub {
		t.sub = nil
	}
	t.mu.Unlock()
	close(sub.done)
}

// register allocates a $rid and the channel its answer is delivered on.
func (t *twinState) register() (string, <-chan twinResponse) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lastRID++
	rid := strconv.FormatUint(t.lastRID, 10)
	ch := make(chan twinResponse, 1)
	if t.pending == nil {
		t.pending = map[string]chan twinResponse{}
	}
	t.pending[rid] = ch
	return rid, ch
}

// unregister forgets rid's waiter (answered or not).
func (t *twinState) unregister(rid string) {
	t.mu.Lock()
	delete(t.pending, rid)
	t.mu.Unlock()
}

// deliver hands r to rid's waiter, if one is pending; it never blocks.
func (t *twinState) deliver(rid string, r twinResponse) bool {
	t.mu.Lock()
	ch, ok := t.pending[rid]
	delete(t.pending, rid) // a second answer to the same $rid is dropped
	t.mu.Unlock()
	if ok {
		ch <- r // buffered 1, and the only send: it was removed above
	}
	return ok
}

// twinReady returns the current connection once it holds the twin
// response subscription, making it if this is the connection's first twin
// request.
func (s *Session) twinReady(ctx context.Context) (*conn, error) {
	for {
		c, sub, owner := s.twin.acquire()
		if c == nil || !s.isUp(c) {
			return nil, ErrNotConnected
		}
		if owner {
			err := s.subscribeTwin(ctx, c)
			s.twin.settle(sub, err)
			return c, err
		}
		select {
		case <-sub.done:
			if sub.err == nil || errors.Is(sub.err, ErrTwinRefused) {
				return c, sub.err
			}
			// Whoever subscribed gave up (its ctx ended): try again.
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.lost:
			return nil, s.connLost(c)
		}
	}
}

// subscribeTwin subscribes c to twin responses at QoS 0; they reach
// onMessage through paho's default handler.
func (s *Session) subscribeTwin(ctx context.Context, c *conn) error {
	tok := c.client.Subscribe(iothub.TwinResponseSubscription, 0, nil)
	if err := s.twinWait(ctx, c, tok); err != nil {
		return fmt.Errorf("device: subscribe %s: %w", iothub.TwinResponseSubscription, err)
	}
	if q := tok.(*mqtt.SubscribeToken).Result()[iothub.TwinResponseSubscription]; q == 0x80 {
		s.log.Warn("the hub refused the twin subscription; twin reports fail on this connection", logkey.Conn, c.id,
			logkey.Subscription, iothub.TwinResponseSubscription)
		return ErrTwinRefused
	}
	s.log.Debug("subscribed", logkey.Conn, c.id, logkey.Subscription, iothub.TwinResponseSubscription)
	return nil
}

// twinWait waits for tok, bounded by ctx and by c's life.
func (s *Session) twinWait(ctx context.Context, c *conn, tok mqtt.Token) error {
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			select {
			case <-c.lost:
				return s.connLost(c)
			default:
			}
			return err
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-c.lost:
		return s.connLost(c)
	}
}

// connLost is ErrConnectionLost with c's cause; c must be down.
func (s *Session) connLost(c *conn) error {
	s.mu.Lock()
	cause := c.lostErr
	s.mu.Unlock()
	if cause == nil {
		return ErrConnectionLost
	}
	return fmt.Errorf("%w: %w", ErrConnectionLost, cause)
}

// onTwinResponse takes a PUBLISH on the twin response topic from paho's
// receive path: it hands the answer to its waiter without blocking.
func (s *Session) onTwinResponse(c *conn, m mqtt.Message) {
	status, rid, version, err := iothub.ParseTwinResponseTopic(m.Topic())
	if err != nil {
		s.log.Warn("ignoring a malformed twin response", logkey.Conn, c.id, logkey.Topic, m.Topic(), logkey.Err, err)
		return
	}
	if !s.twin.deliver(rid, twinResponse{status: status, version: version, body: m.Payload()}) {
		s.log.Debug("ignoring a twin response nobody waits for", logkey.Conn, c.id, logkey.RequestID, rid, logkey.Status, status)
	}
}
