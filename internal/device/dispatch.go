package device

import (
	"context"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/methodd/methodd/internal/logkey"
	"github.com/methodd/methodd/iothub"
)

// Request is one direct-method call as received.
type Request struct {
	Method  string
	RID     string // the $rid, opaque, echoed in the reply
	Payload []byte // the raw bytes as received; empty when the caller sent null
}

// Response is a handler's reply. Payload should be valid JSON of at most
// iothub.MaxPayloadBytes; empty is sent as an empty body (the hub reports
// null).
type Response struct {
	Status  int
	Payload []byte
	// Release, when set, is called once the reply has been written; the
	// session does not read Payload after that, so the handler may reuse
	// its memory. A reply that is dropped or refused is not released.
	Release func()
	// AfterSend, when set, is what the call still has to do once its reply
	// has been published (written to the connection, after Release): it
	// runs then, once, in the call's own goroutine, which it holds (and
	// its MaxInFlight slot) until it returns; the session's shutdown
	// drain waits for it. It never runs when the reply is dropped or
	// replaced (too large). It must not block for long: start work, don't
	// do it.
	AfterSend func()
}

// Handler answers method requests. HandleMethod is called concurrently, each
// call in its own goroutine; it must honour ctx, which is cancelled when the
// session gives up draining at shutdown.
type Handler interface {
	HandleMethod(ctx context.Context, r Request) Response
}

// Status codes of the replies the session makes itself.
const (
	statusInternal    = 500
	statusUnavailable = 503
)

// Bodies of the replies the session makes itself.
var (
	bodyBusy     = []byte(`{"error":"busy: too many calls in flight"}`)
	bodyStopping = []byte(`{"error":"shutting down"}`)
	bodyTooLarge = []byte(`{"error":"reply exceeds 128 KB"}`)
)

// onMessage is paho's handler for every PUBLISH on c. It runs on paho's
// receive path, so it never blocks: it hands a twin response to its
// waiter, or parses the method request and starts a goroutine, or refuses
// the request when too many are running.
func (s *Session) onMessage(c *conn, m mqtt.Message) {
	if iothub.IsTwinResponseTopic(m.Topic()) {
		s.onTwinResponse(c, m)
		return
	}
	method, rid, err := iothub.ParseMethodRequestTopic(m.Topic())
	if err != nil {
		s.log.Warn("ignoring message on an unexpected topic", logkey.Conn, c.id, logkey.Topic, m.Topic(), logkey.Err, err)
		return
	}
	req := Request{Method: method, RID: rid, Payload: m.Payload()}
	s.mu.Lock()
	closing, ctx := s.closing, s.handlers
	if !closing {
		select {
		case s.sem <- struct{}{}:
			s.calls.Add(1)
			s.mu.Unlock()
			s.start(job{ctx: ctx, c: c, req: req})
			return
		default:
		}
	}
	body := bodyBusy
	if closing {
		body = bodyStopping
	}
	select {
	case s.spare <- struct{}{}:
		s.calls.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.done(s.spare)
			s.reply(c, req, Response{Status: statusUnavailable, Payload: body}, time.Now())
		}()
	default:
		s.mu.Unlock()
		s.log.Error("call dropped: too many calls in flight", logkey.Method, method, logkey.RequestID, rid)
	}
}

// job is one admitted request: it holds a sem token and a calls count,
// which handle gives back.
type job struct {
	ctx context.Context
	c   *conn
	req Request
}

// workerIdle is how long a worker waits for another request before it
// exits.
const workerIdle = 30 * time.Second

// start hands j to an idle worker, or starts a worker for it. Workers
// outlive their request: a busy session reuses goroutines whose stacks
// have already grown to what a handler needs, instead of starting each
// request on a fresh 2 KB stack that grows (and is copied) on every call.
// There are never more workers than admitted requests plus idle ones, so
// MaxInFlight bounds them. Measured against a goroutine per request, the
// two daemons interleaved cell by cell in one benchmark run, twice (issue
// 13): 10–21 % less daemon CPU per call with one call in flight (MQTT and
// REST, 100 B and 8 KB) and 10–11 % at 128 in flight with 100 B.
func (s *Session) start(j job) {
	select {
	case s.jobs <- j:
	default:
		go s.worker(j)
	}
}

// worker handles j, then whatever requests start hands it, until it has
// been idle for workerIdle or the session has ended.
func (s *Session) worker(j job) {
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		s.handle(j.ctx, j.c, j.req)
		j = job{} // an idle worker must not keep its last payload or connection alive
		idle.Reset(workerIdle)
		select {
		case j = <-s.jobs:
		case <-idle.C:
			return
		case <-s.ended:
			return
		}
	}
}

// handle runs the handler for one request and publishes its reply.
func (s *Session) handle(ctx context.Context, c *conn, req Request) {
	defer s.done(s.sem)
	start := time.Now()
	resp := s.h.HandleMethod(ctx, req)
	if len(resp.Payload) > iothub.MaxPayloadBytes {
		s.log.Error("reply too large", logkey.Method, req.Method, logkey.RequestID, req.RID, logkey.Bytes, len(resp.Payload))
		resp = Response{Status: statusInternal, Payload: bodyTooLarge}
	}
	s.reply(c, req, resp, start)
}

func (s *Session) done(tokens chan struct{}) {
	<-tokens
	s.calls.Done()
}

// reply publishes resp for req, which arrived on c, on the connection
// replyTarget picks, waiting (bounded) while a renewal connects. A reply
// with nowhere to go is dropped and logged.
func (s *Session) reply(c *conn, req Request, resp Response, start time.Time) {
	topic := iothub.MethodResponseTopic(resp.Status, req.RID)
	deadline := time.NewTimer(s.cfg.DialTimeout)
	defer deadline.Stop()
	for {
		t, wait := s.replyTarget(c)
		if wait != nil {
			select {
			case <-wait:
				continue
			case <-deadline.C:
				s.dropped(req, resp, "timed out waiting for a connection")
				return
			}
		}
		if t == nil {
			s.dropped(req, resp, "the connection it arrived on was lost")
			return
		}
		err := s.publish(t, topic, resp.Payload, deadline.C)
		if err == nil {
			if resp.Release != nil {
				resp.Release()
			}
			s.log.Debug("call answered", logkey.Method, req.Method, logkey.RequestID, req.RID, logkey.Status, resp.Status,
				logkey.Conn, t.id, logkey.DurationMs, time.Since(start).Milliseconds())
			if resp.AfterSend != nil {
				resp.AfterSend()
			}
			return
		}
		// The target died under us; wait until it is marked down, then
		// look again: a renewal may have replaced it.
		select {
		case <-t.lost:
		case <-deadline.C:
			s.dropped(req, resp, err.Error())
			return
		}
	}
}

// publish sends one QoS 0 PUBLISH on t and waits until paho has written it.
func (s *Session) publish(t *conn, topic string, payload []byte, deadline <-chan time.Time) error {
	tok := t.client.Publish(topic, 0, false, payload)
	select {
	case <-tok.Done():
		return tok.Error()
	case <-deadline:
		return context.DeadlineExceeded
	}
}

func (s *Session) dropped(req Request, resp Response, why string) {
	s.log.Warn("reply dropped", logkey.Method, req.Method, logkey.RequestID, req.RID, logkey.Status, resp.Status, logkey.Reason, why)
}
