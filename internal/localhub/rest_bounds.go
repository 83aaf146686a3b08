package localhub

import (
	"context"
	"net"
	"net/http"
	"time"

	"github.com/methodd/methodd/iothub"
)

// Bounds of the HTTPS service API (issue 19, class 3). A request's TLS
// handshake and headers must arrive within Options.RequestTimeout
// (ReadHeaderTimeout), its body within Options.RequestTimeout of the
// handler's start (a per-request read deadline, lifted once the body is
// read so that a method call may wait for its device), and each response
// must be written within Options.RequestTimeout. Headers are capped at
// maxHeaderBytes (431 past it), an idle keep-alive connection is closed
// after Options.IdleTimeout, and at most Options.MaxPendingConns
// connections may be open that have not yet made an authorized request.
//
// Bodies are capped per route; a larger one is 413001 MessageTooLarge
// with "Connection: close", refused from its Content-Length without being
// read, or after maxBody+1 bytes of a chunked one. Every handler checks
// the Authorization header before it reads a byte of the body.
const (
	// maxBodyBytes: methods and jobs (a method payload is at most
	// 128 KB, plus the envelope) and twins (the hub's twin rules refuse
	// far smaller documents with 400004; the cap only bounds the read).
	maxBodyBytes = iothub.MaxPayloadBytes + 16*1024
	// maxIdentityBytes: a registry PUT (an identity is under 1 KB).
	maxIdentityBytes = 16 * 1024
	// maxQueryBytes: a query body ({"query": "..."}).
	maxQueryBytes = 64 * 1024
	// restWriteTimeout is the server's WriteTimeout, a backstop above the
	// longest a method call may hold its request (connect timeout 300 s
	// plus response timeout 300 s); each response write has its own
	// deadline (Options.RequestTimeout).
	restWriteTimeout = 11 * time.Minute
)

// connRef is the HTTPS connection a request arrived on and the admission
// that counts it until its first authorized request.
type connRef struct {
	c   net.Conn
	adm *admission
}

type connRefKey struct{}

// withConn is the HTTPS server's ConnContext: requests carry their
// connection so that an authorized one can leave the admission count.
func withConn(adm *admission) func(context.Context, net.Conn) context.Context {
	return func(ctx context.Context, c net.Conn) context.Context {
		return context.WithValue(ctx, connRefKey{}, connRef{c: c, adm: adm})
	}
}

// authenticated marks r's connection as authenticated.
func authenticated(r *http.Request) {
	if ref, ok := r.Context().Value(connRefKey{}).(connRef); ok {
		ref.adm.leave(ref.c)
	}
}

// bodyDeadline sets the read deadline of r's body: RequestTimeout from
// now. It also bounds the server's discarding of a body the handler did
// not read (a refused request).
func (a *restAPI) bodyDeadline(w http.ResponseWriter) {
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(a.h.opts.RequestTimeout))
}

// writeDeadline bounds the response write that follows.
func (a *restAPI) writeDeadline(w http.ResponseWriter) {
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(a.h.opts.RequestTimeout))
}
