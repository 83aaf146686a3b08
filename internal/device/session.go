package device

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/methodd/methodd/internal/logkey"
	"github.com/methodd/methodd/iothub"
)

// disconnectQuiesce bounds how long closing a connection waits for its
// DISCONNECT packet to be written, in milliseconds (paho's unit).
const disconnectQuiesce = 250

// drainGrace is how long drain waits for handlers after cancelling their
// context before it stops waiting for them.
const drainGrace = 5 * time.Second

// Session is one device or module identity connected to a hub. Build it
// with New and call Run once.
type Session struct {
	cfg     Config
	h       Handler
	log     *slog.Logger
	backoff backoff
	sem     chan struct{} // one token per running handler
	spare   chan struct{} // one token per goroutine sending a refusal
	jobs    chan job      // unbuffered: idle workers wait here (see start)
	ended   chan struct{} // closed when Run returns: idle workers exit
	running atomic.Bool
	// id is the identity connections use: Config.Identity, then each one
	// Reidentify returns. Written by the loop goroutine, read by anyone.
	id atomic.Pointer[iothub.ConnectionString]
	// needID: call Reidentify before the next attempt (loop goroutine only).
	needID bool

	mu       sync.Mutex // guards the fields below and every conn's state
	closing  bool       // shutting down: new requests are refused
	calls    sync.WaitGroup
	handlers context.Context // parent of every handler's context

	twin twinState // ReportProperties' connection, subscription and waiters
}

// New validates cfg, applies its defaults and returns a session that calls h
// for every method request. It does no I/O.
func New(cfg Config, h Handler) (*Session, error) {
	if h == nil {
		return nil, errors.New("device: nil handler")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	log := cfg.Logger.With(logkey.Component, "device")
	if cfg.Reidentify == nil { // otherwise the identity may change: logged when it does
		log = log.With(logkey.Identity, cfg.Identity.ClientID())
	}
	s := &Session{
		cfg:     cfg,
		h:       h,
		log:     log,
		backoff: newBackoff(cfg.BackoffMin, cfg.BackoffMax),
		sem:     make(chan struct{}, cfg.MaxInFlight),
		spare:   make(chan struct{}, 64),
		jobs:    make(chan job),
		ended:   make(chan struct{}),
		needID:  cfg.Reidentify != nil && cfg.Identity.DeviceID == "",
	}
	id := cfg.Identity
	s.id.Store(&id)
	return s, nil
}

// Identity returns the identity the session connects as: Config.Identity
// until Config.Reidentify replaces it (empty until the first one when
// Config.Identity was). It holds a secret. Safe for concurrent use.
func (s *Session) Identity() iothub.ConnectionString { return *s.id.Load() }

// Run connects, keeps the session connected (reconnecting with back-off,
// renewing the SAS before it expires) and answers method requests until ctx
// is done. It then refuses new requests, waits for the running ones (at most
// DrainTimeout, after which their context is cancelled), disconnects and
// returns nil. Connection failures are retried, never returned; Run returns
// an error only if it is called twice.
func (s *Session) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("device: Run called twice")
	}
	handlers, cancelHandlers := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelHandlers()
	s.mu.Lock()
	s.handlers = handlers
	s.mu.Unlock()

	defer close(s.ended)
	cur := s.loop(ctx)
	s.drain(cur, cancelHandlers)
	s.emit(State{Kind: Stopped})
	s.log.Info("session stopped")
	return nil
}

// loop runs connections until ctx is done and returns the last one.
func (s *Session) loop(ctx context.Context) *conn {
	var (
		cur      *conn
		id       uint64
		failures int
		fails    failTracker
		dups     dupTracker
	)
	for ctx.Err() == nil {
		id++
		next := newConn(id)
		renewal := s.isUp(cur)
		if renewal {
			s.link(cur, next)
			s.flush(ctx, cur)
		}
		s.emit(State{Kind: Connecting, Conn: id, Renewal: renewal})
		cr, err := s.connect(ctx, next)
		if err != nil {
			if renewal {
				s.unlink(cur)
			} else {
				cur = next
			}
			if ctx.Err() != nil {
				break
			}
			delay := s.backoff.delay(failures)
			failures++
			s.logConnectFailed(&fails, id, renewal, err, delay)
			s.emit(State{Kind: Disconnected, Conn: id, Renewal: renewal, Err: err, RetryIn: delay})
			if !sleep(ctx, delay) {
				break
			}
			continue
		}
		s.twin.setCurrent(next)
		if renewal {
			s.retire(cur)
		}
		// A connection that got its CONNACK and SUBACK proved the path
		// works: the back-off starts again from its minimum. (Waiting for
		// 30 s of uptime instead made five quick cuts take 16 s to recover.)
		// A hub kicking a duplicate identity then sees about one attempt a
		// second, each logged: the Node SDK reconnects at once.
		cur, failures = next, 0
		fails.reset()
		upAt := s.cfg.Now()
		s.log.Info("connected and subscribed", logkey.Conn, id, logkey.Subscription, iothub.MethodsSubscription, logkey.Transport, s.cfg.Transport,
			logkey.Renewal, renewal, logkey.TokenExpiry, cr.expiry)
		s.emit(State{Kind: Connected, Conn: id, Renewal: renewal})

		lost := s.hold(ctx, cur, cr)
		if !lost {
			continue // renewal due, or ctx done
		}
		delay := s.backoff.delay(failures)
		failures++
		s.log.Warn("connection lost", logkey.Conn, id, logkey.Err, cur.lostErr, logkey.RetryInMs, delay.Milliseconds())
		dup, logDup := dups.lost(upAt, s.cfg.Now())
		if logDup {
			s.log.Warn("another client is probably connected with this identity (the hub drops this connection seconds after each connect): stop the other one or give each gateway its own identity",
				logkey.Identity, s.Identity().ClientID(), logkey.Drops, len(dups.drops), logkey.WindowMs, dupWindow.Milliseconds())
		}
		s.emit(State{Kind: Disconnected, Conn: id, Err: cur.lostErr, RetryIn: delay, Duplicate: dup})
		if !sleep(ctx, delay) {
			break
		}
	}
	return cur
}

// logConnectFailed logs a failed attempt: in full the first time a cause
// is seen (every time for causes that are not certificate errors); an
// unchanged certificate error then only as a bounded-rate summary.
func (s *Session) logConnectFailed(f *failTracker, id uint64, renewal bool, err error, delay time.Duration) {
	switch f.observe(err, s.cfg.Now()) {
	case "first":
		if f.cause != "" {
			s.log.Warn("connect failed", logkey.Conn, id, logkey.Renewal, renewal, logkey.Err, err, logkey.Cause, f.cause, logkey.RetryInMs, delay.Milliseconds())
			return
		}
		s.log.Warn("connect failed", logkey.Conn, id, logkey.Renewal, renewal, logkey.Err, err, logkey.RetryInMs, delay.Milliseconds())
	case "summary":
		s.log.Warn("connect still failing", logkey.Cause, f.cause, logkey.Attempts, f.attempts, logkey.Since, f.since, logkey.RetryInMs, delay.Milliseconds())
	default:
		s.log.Debug("connect failed", logkey.Conn, id, logkey.Renewal, renewal, logkey.Err, err, logkey.RetryInMs, delay.Milliseconds())
	}
}

// hold waits while c is up. It returns true when c was lost, false when ctx
// is done or the token is due for renewal (c is still up then).
func (s *Session) hold(ctx context.Context, c *conn, cr credentials) bool {
	renew := timerAt(s.cfg.Now(), cr.renewAt)
	warn := timerAt(s.cfg.Now(), fixedTokenWarning(cr, s.cfg.Now()))
	defer stopTimer(renew)
	defer stopTimer(warn)
	for {
		select {
		case <-ctx.Done():
			return false
		case <-c.lost:
			return true
		case <-timerC(renew):
			s.log.Info("renewing SAS token", logkey.Conn, c.id)
			return false
		case <-timerC(warn):
			s.log.Warn("the connection string's SharedAccessSignature expires soon and cannot be renewed; the hub will disconnect at expiry",
				logkey.Expiry, cr.expiry)
			warn = nil
		}
	}
}

// connect dials c, sends CONNECT with fresh credentials and subscribes to
// method requests; it returns once the SUBACK is in. On failure c is down
// and its client closed.
func (s *Session) connect(ctx context.Context, c *conn) (credentials, error) {
	if s.needID {
		if err := s.reidentify(ctx); err != nil {
			s.setDown(c, err)
			return credentials{}, fmt.Errorf("reidentify: %w", err)
		}
	}
	cfg := s.cfg // this connection's: the current identity
	cfg.Identity = s.Identity()
	cr, err := cfg.mint()
	if err != nil {
		s.setDown(c, err)
		return cr, fmt.Errorf("credentials: %w", err)
	}
	opts := cfg.clientOptions(cr.password,
		func(_ mqtt.Client, m mqtt.Message) { s.onMessage(c, m) },
		func(_ mqtt.Client, err error) { s.setDown(c, err) })
	c.client = mqtt.NewClient(opts)
	fail := func(err error) (credentials, error) {
		s.setDown(c, err)
		c.client.Disconnect(0)
		return cr, err
	}
	if err := s.await(ctx, c.client.Connect()); err != nil {
		s.needID = s.cfg.Reidentify != nil && refusedIdentity(err)
		return fail(fmt.Errorf("connect: %w", err))
	}
	tok := c.client.Subscribe(iothub.MethodsSubscription, 0, nil)
	if err := s.await(ctx, tok); err != nil {
		return fail(fmt.Errorf("subscribe: %w", err))
	}
	if q := tok.(*mqtt.SubscribeToken).Result()[iothub.MethodsSubscription]; q == 0x80 {
		return fail(errors.New("subscribe: refused by the hub"))
	}
	if !s.setUp(c) {
		return fail(fmt.Errorf("lost during subscribe: %w", c.lostErr))
	}
	return cr, nil
}

// reidentify replaces the session's identity with one from
// Config.Reidentify, bounded by DialTimeout.
func (s *Session) reidentify(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout)
	defer cancel()
	id, err := s.cfg.Reidentify(ctx)
	if err == nil {
		err = s.cfg.checkIdentity(id)
	}
	if err != nil {
		return err
	}
	s.id.Store(&id)
	s.needID = false
	s.log.Info("new identity", logkey.Identity, id.ClientID(), logkey.Host, id.HostName, logkey.Dial, id.DialHost())
	return nil
}

// refusedIdentity reports whether a CONNECT failed because the hub refused
// the identity (CONNACK 4 or 5), as opposed to the network or the hub
// failing.
func refusedIdentity(err error) bool {
	return errors.Is(err, packets.ErrorRefusedNotAuthorised) || errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword)
}

// await waits for tok, bounded by DialTimeout and ctx.
func (s *Session) await(ctx context.Context, tok mqtt.Token) error {
	t := time.NewTimer(s.cfg.DialTimeout)
	defer t.Stop()
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return errors.New("timed out")
	}
}

// flush makes sure the hub has read every reply written on c, which is
// about to be replaced: c's replies now wait for its successor (link), and
// a SUBSCRIBE round trip on c returns only once the hub has processed all
// that c carried before it (it reads a connection's packets in order).
// The hub closes c as soon as the successor connects, and what it had not
// read yet would be lost with it. The methods filter is subscribed again,
// which changes nothing at the hub; a failure is only logged.
func (s *Session) flush(ctx context.Context, c *conn) {
	if err := s.await(ctx, c.client.Subscribe(iothub.MethodsSubscription, 0, nil)); err != nil {
		s.log.Debug("flush before renewal failed", logkey.Conn, c.id, logkey.Err, err)
	}
}

// retire closes a connection replaced by a planned renewal. The hub has
// normally dropped it already (one connection per identity); closing it
// here covers a hub that has not. Replies to its requests go to its
// successor (see replyTarget).
func (s *Session) retire(c *conn) {
	c.client.Disconnect(disconnectQuiesce)
	s.setDown(c, errors.New("replaced by a renewed connection"))
}

// drain refuses new requests, waits for running handlers (bounded), then
// closes c.
func (s *Session) drain(c *conn, cancelHandlers context.CancelFunc) {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.calls.Wait()
		close(done)
	}()
	t := time.NewTimer(s.cfg.DrainTimeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		s.log.Warn("drain timeout: cancelling running calls", logkey.TimeoutMs, s.cfg.DrainTimeout.Milliseconds())
		cancelHandlers()
		g := time.NewTimer(drainGrace)
		defer g.Stop()
		select {
		case <-done:
		case <-g.C:
			s.log.Error("calls still running after cancellation; giving up on them", logkey.GraceMs, drainGrace.Milliseconds())
		}
	}
	if c != nil && c.client != nil {
		c.client.Disconnect(disconnectQuiesce)
		s.setDown(c, errors.New("session stopped"))
	}
}

func (s *Session) emit(st State) {
	if s.cfg.OnState != nil {
		s.cfg.OnState(st)
	}
}

// sleep waits d or until ctx is done; it reports whether d elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// timerAt returns a timer firing at the wall-clock time at (per the
// injected clock now), or nil when at is zero.
func timerAt(now, at time.Time) *time.Timer {
	if at.IsZero() {
		return nil
	}
	return time.NewTimer(max(at.Sub(now), 0))
}

func timerC(t *time.Timer) <-chan time.Time {
	if t == nil {
		return nil
	}
	return t.C
}

func stopTimer(t *time.Timer) {
	if t != nil {
		t.Stop()
	}
}
