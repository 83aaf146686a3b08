package localhub

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// connectGrace is the default bound (Options.ConnectTimeout) of a new
// device connection's TLS handshake (crypto/tls handshakes on the first
// Read, under the deadline set at accept), WSS upgrade and CONNECT packet;
// afterwards the MQTT keep-alive governs its deadline.
const connectGrace = DefaultConnectTimeout

// maxHeaderBytes caps the request headers of the HTTPS and WSS servers
// (a SAS token is well under 1 KB; Go's default is 1 MB).
const maxHeaderBytes = 32 * 1024

// connSet tracks a listener's connections from accept until the broker's
// establish returns for them, whether or not they became clients, so that
// closing the listener closes them all and can wait for the broker to be
// done with each.
type connSet struct {
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup // one per tracked connection
}

// add tracks c until remove; it reports false (and closes c) once the set
// is closed.
func (s *connSet) add(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		c.Close()
		return false
	}
	if s.conns == nil {
		s.conns = map[net.Conn]struct{}{}
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return true
}

// remove ends the tracking of c, which add accepted.
func (s *connSet) remove(c net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
	s.wg.Done()
}

// closeAll closes every tracked connection, refuses new ones and waits
// until each tracked connection has been removed.
func (s *connSet) closeAll() {
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait() // no add succeeds after closed is set
}

// tlsListener feeds connections accepted on an already bound TLS listener to
// the broker. Binding happens in Start, so port 0 is resolved before the
// broker starts and bind errors surface synchronously.
type tlsListener struct {
	id    string
	ln    net.Listener  // a crypto/tls listener
	grace time.Duration // the connect deadline; 0 = connectGrace
	adm   *admission    // unauthenticated connections; nil = no cap
	conns connSet
}

// graceOr is d, or connectGrace when d is 0.
func graceOr(d time.Duration) time.Duration {
	if d <= 0 {
		return connectGrace
	}
	return d
}

var _ listeners.Listener = (*tlsListener)(nil)

func (l *tlsListener) Init(*slog.Logger) error { return nil }
func (l *tlsListener) ID() string              { return l.id }
func (l *tlsListener) Address() string         { return l.ln.Addr().String() }
func (l *tlsListener) Protocol() string        { return "mqtts" }

// Serve accepts until the listener is closed; each connection is handed to
// establish in its own goroutine, tracked until establish returns.
func (l *tlsListener) Serve(establish listeners.EstablishFn) {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		_ = c.SetDeadline(time.Now().Add(graceOr(l.grace))) // before the (lazy) TLS handshake
		if !l.adm.enter(c) {
			c.Close()
			continue
		}
		if !l.conns.add(c) {
			l.adm.leave(c)
			continue
		}
		go func() {
			defer l.adm.leave(c)
			defer l.conns.remove(c)
			_ = establish(l.id, c) // the hub logs connection outcomes itself
			c.Close()
		}()
	}
}

// Close stops accepting, closes every connection, clients included, and
// returns once the broker is done with each.
//
// It does not call the broker's closeClients: in mochi v2.7.9 that takes
// the client table's read lock twice (GetByListener calls Len), so a client
// deleting itself in between deadlocks the hub's Close. Closing the
// connections ends those clients without a DISCONNECT, which MQTT 3.1.1
// servers do not send anyway.
func (l *tlsListener) Close(listeners.CloseFn) {
	l.ln.Close()
	l.conns.closeAll()
}

// wsListener serves MQTT over secure WebSockets at WebSocketPath with the
// subprotocol "mqtt" (C sends "MQTT"; both are accepted, §3.1).
type wsListener struct {
	id        string
	ln        net.Listener  // a crypto/tls listener
	grace     time.Duration // the connect deadline (handshake, upgrade, CONNECT)
	adm       *admission    // unauthenticated connections; nil = no cap
	srv       *http.Server
	conns     connSet
	establish listeners.EstablishFn
	ready     chan struct{} // closed once establish is set
	upgrader  websocket.Upgrader
}

var _ listeners.Listener = (*wsListener)(nil)

// newWSListener serves MQTT over WSS on ln. grace (0 = connectGrace)
// bounds the TLS handshake, the upgrade request, an idle keep-alive
// connection and, after the upgrade, the CONNECT; adm (nil = no cap)
// counts connections until their CONNECT is accepted.
func newWSListener(id string, ln net.Listener, errLog *slog.Logger, grace time.Duration, adm *admission) *wsListener {
	grace = graceOr(grace)
	l := &wsListener{
		id:    id,
		ln:    ln,
		grace: grace,
		adm:   adm,
		ready: make(chan struct{}),
		upgrader: websocket.Upgrader{
			Subprotocols: []string{"mqtt", "MQTT"},
			CheckOrigin:  func(*http.Request) bool { return true },
		},
	}
	mux := http.NewServeMux()
	mux.HandleFunc(WebSocketPath, l.handle)
	l.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: grace, // also bounds the TLS handshake
		ReadTimeout:       grace,
		WriteTimeout:      grace,
		IdleTimeout:       grace,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(errLog.Handler(), slog.LevelDebug),
	}
	if adm != nil {
		l.srv.ConnState = adm.connState
	}
	return l
}

func (l *wsListener) Init(*slog.Logger) error { return nil }
func (l *wsListener) ID() string              { return l.id }
func (l *wsListener) Address() string         { return l.ln.Addr().String() }
func (l *wsListener) Protocol() string        { return "wss" }

func (l *wsListener) Serve(establish listeners.EstablishFn) {
	l.establish = establish
	close(l.ready)
	_ = l.srv.Serve(l.ln)
}

func (l *wsListener) handle(w http.ResponseWriter, r *http.Request) {
	<-l.ready
	ws, err := l.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered with an HTTP error
	}
	c := &wsConn{Conn: ws.NetConn(), ws: ws}
	defer l.adm.leave(c.Conn) // counted since accept (ConnState), hijacked now
	if !l.conns.add(c) {
		return
	}
	defer l.conns.remove(c)
	_ = c.SetDeadline(time.Now().Add(l.grace))
	_ = l.establish(l.id, c)
	c.Close()
}

// Close is tlsListener.Close for the WSS server: Shutdown closes the
// listener and idle connections; upgraded ones are the set's.
func (l *wsListener) Close(listeners.CloseFn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = l.srv.Shutdown(ctx)
	l.conns.closeAll()
}

// wsConn adapts a WebSocket connection to the byte stream the broker reads:
// MQTT packets travel in binary messages and may span message boundaries.
type wsConn struct {
	net.Conn // the underlying TLS connection: addresses, deadlines, Close
	ws       *websocket.Conn
	r        io.Reader // the current message, nil between messages
	wmu      sync.Mutex
}

var errNotBinary = errors.New("websocket: MQTT requires binary messages")

func (c *wsConn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			typ, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			if typ != websocket.BinaryMessage {
				return 0, errNotBinary
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if errors.Is(err, io.EOF) {
			c.r = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

func (c *wsConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *wsConn) Close() error { return c.ws.Close() }

// peerCertificates returns the client certificates presented on a device
// connection (the leaf first), nil when none were or the connection is not
// TLS. It completes the TLS handshake when it has not happened yet, under
// the connection's deadline (connectGrace while connecting). A WSS
// connection's certificates are those of its underlying TLS connection.
func peerCertificates(c net.Conn) ([]*x509.Certificate, error) {
	if ws, ok := c.(*wsConn); ok {
		c = ws.Conn
	}
	tc, ok := c.(*tls.Conn)
	if !ok {
		return nil, nil
	}
	if err := tc.Handshake(); err != nil {
		return nil, err
	}
	return tc.ConnectionState().PeerCertificates, nil
}
