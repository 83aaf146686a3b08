package localhub

import (
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/methodd/methodd/internal/logkey"
)

// admission caps the connections of one listener that have not
// authenticated yet: a connection enters when it is accepted and leaves
// when it authenticates (a device at its successful CONNACK, a service
// client at its first authorized request) or closes. Past the cap a new
// connection is refused: its caller closes it at once, and the refusals are
// logged at most once per admissionLogEvery. A nil *admission admits all.
type admission struct {
	name    string
	max     int
	log     *slog.Logger
	mu      sync.Mutex
	pending map[net.Conn]struct{}
	refused int       // since the last log line
	logged  time.Time // when the last refusal was logged
}

// admissionLogEvery rate-limits the refusal log.
const admissionLogEvery = 10 * time.Second

func newAdmission(name string, limit int, log *slog.Logger) *admission {
	return &admission{name: name, max: limit, log: log, pending: map[net.Conn]struct{}{}}
}

// enter counts c as pending; it reports false when the cap is reached.
func (a *admission) enter(c net.Conn) bool {
	if a == nil {
		return true
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.pending) < a.max {
		a.pending[c] = struct{}{}
		return true
	}
	a.refused++
	if now := time.Now(); now.Sub(a.logged) >= admissionLogEvery {
		a.log.Warn("connections refused: too many unauthenticated connections", logkey.Listener, a.name,
			logkey.Remote, c.RemoteAddr().String(), logkey.Limit, a.max, logkey.Refused, a.refused)
		a.logged, a.refused = now, 0
	}
	return false
}

// leave forgets c (authenticated or closed); it is idempotent.
func (a *admission) leave(c net.Conn) {
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.pending, c)
}

// connState is an http.Server ConnState hook: new connections enter (and
// are closed past the cap), closed ones leave. A hijacked (WSS) connection
// stays pending until its CONNECT is accepted.
func (a *admission) connState(c net.Conn, st http.ConnState) {
	switch st {
	case http.StateNew:
		if !a.enter(c) {
			c.Close()
		}
	case http.StateClosed:
		a.leave(c)
	}
}

// connackHook makes a broker answer CONNECTs as an MQTT 3.1.1 server
// whatever the client claimed (the real hub and DPS speak 3.1.1 only, §3.1):
// every CONNACK is encoded without MQTT 5 properties and with a 3.1.1
// return code (connack311). It also tells the listener's admission that
// a connection authenticated once its successful CONNACK is encoded.
type connackHook struct {
	mqtt.HookBase
	adm, ws *admission // of the TLS and of the WSS listener
}

func (k *connackHook) ID() string { return "connack311" }

func (k *connackHook) Provides(b byte) bool {
	return b == mqtt.OnPacketEncode
}

// OnPacketEncode rewrites CONNACKs for MQTT 3.1.1, and counts a connection
// as authenticated at its CONNACK 0: before the CONNACK is written, so that
// a client that has read it never finds its connection still counted.
func (k *connackHook) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if pk.FixedHeader.Type != packets.Connack {
		return pk
	}
	pk.ProtocolVersion = mqttVersion311
	pk.ReasonCode = connack311(pk.ReasonCode)
	if pk.ReasonCode != 0 {
		pk.SessionPresent = false
		return pk
	}
	if ws, ok := cl.Net.Conn.(*wsConn); ok {
		k.ws.leave(ws.Conn) // counted by its TLS connection
	} else {
		k.adm.leave(cl.Net.Conn)
	}
	return pk
}

// connack311 maps a CONNACK code (MQTT 5 reason codes included, which
// mochi sends for protocol errors even to 3.1.1 clients) to an MQTT 3.1.1
// return code: 1 unacceptable protocol (malformed, protocol error, bad
// name or level), 2 identifier rejected, 3 server unavailable, 5 not
// authorized (everything else). 3.1.1 codes pass unchanged.
func connack311(code byte) byte {
	switch code {
	case 0, 1, 2, 3, 4, 5:
		return code
	case 0x81, 0x82, 0x84: // malformed, protocol error, unsupported version
		return 1
	case 0x80, 0x85: // unspecified (mochi: empty id without clean session), client id not valid
		return 2
	case 0x88, 0x89, 0x97, 0x9F: // unavailable, busy, quota, connection rate
		return 3
	}
	return 5 // 0x86 bad user name or password included, as mochi maps it
}
