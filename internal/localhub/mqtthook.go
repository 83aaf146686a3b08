package localhub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/methodd/methodd/internal/logkey"
	"github.com/methodd/methodd/iothub"
)

// Limits the real hub applies to device connections (§3.2).
const (
	maxKeepalive   = 1177 // seconds; the hub closes after 1.5 × keep-alive, capped at 1767 s
	mqttVersion311 = 4
)

// hook is the broker hook that makes mochi behave like IoT Hub: SAS
// authentication, one connection per identity, IoT Hub topics only, method
// replies routed to pending calls. It logs and reports (Options.OnEvent)
// what happens to connections.
type hook struct {
	mqtt.HookBase
	h *Hub
}

func (k *hook) ID() string { return "iothub" }

func (k *hook) Provides(b byte) bool {
	switch b {
	case mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnACLCheck,
		mqtt.OnSessionEstablish, mqtt.OnSessionEstablished, mqtt.OnDisconnect, mqtt.OnPacketEncode, mqtt.OnPacketSent,
		mqtt.OnPacketRead, mqtt.OnSubscribed, mqtt.OnUnsubscribed, mqtt.OnPublish:
		return true
	}
	return false
}

// OnConnect refuses protocols other than MQTT 3.1.1 (CONNACK 1) and caps
// the keep-alive as the hub does.
func (k *hook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	if pk.ProtocolVersion != mqttVersion311 {
		k.h.refuse(cl, packets.ErrUnsupportedProtocolVersion, fmt.Errorf("%w: got protocol level %d", ErrProtocolVersion, pk.ProtocolVersion))
		_ = k.h.broker.SendConnack(cl, packets.ErrUnsupportedProtocolVersion, false, nil)
		return packets.ErrUnsupportedProtocolVersion
	}
	if cl.State.Keepalive == 0 || cl.State.Keepalive > maxKeepalive {
		cl.State.Keepalive = maxKeepalive
	}
	return nil
}

// OnConnectAuthenticate verifies username, client id and credentials (SAS
// password or, for an X.509 identity, the TLS client certificate); on
// failure the broker answers CONNACK 5 (not authorized) and no existing
// session is touched.
func (k *hook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	if err := k.h.authenticate(pk, cl.Net.Conn); err != nil {
		k.h.refuse(cl, packets.ErrBadUsernameOrPassword, err)
		return false
	}
	return true
}

// refuse logs and reports a CONNECT that is answered with code.
func (h *Hub) refuse(cl *mqtt.Client, code packets.Code, err error) {
	h.logConn(slog.LevelWarn, "mqtt connection refused", cl, logkey.Reason, err.Error())
	h.emit(Event{Kind: EventConnRefused, ClientID: cl.ID, ReturnCode: connackCode(cl, code), Err: err})
}

// connackCode is the return code the client receives for code: always an
// MQTT 3.1.1 one (connackHook rewrites every CONNACK).
func connackCode(_ *mqtt.Client, code packets.Code) byte {
	if v3, ok := packets.V5CodesToV3[code]; ok {
		code = v3
	}
	return connack311(code.Code)
}

// OnACLCheck allows everything: topic rules are enforced in OnPacketRead,
// where a violation can disconnect the client as the real hub does.
func (k *hook) OnACLCheck(*mqtt.Client, string, bool) bool { return true }

// OnSessionEstablish runs after authentication and before the broker takes
// over any previous session of the same client id: the live connection, if
// any, is kicked (one connection per identity, §3.1), and calls wait for
// cl's CONNACK instead of finding the identity offline (presence.takeover).
// A persistent session the broker no longer holds (the hub restarted) gets
// its saved subscriptions back; a clean session forgets them.
func (k *hook) OnSessionEstablish(cl *mqtt.Client, pk packets.Packet) {
	if live := k.h.presence.takeover(cl); live != nil {
		k.kick(live)
	}
	if cl.Properties.Clean {
		k.h.recordSession(cl) // forgets a saved session
	} else {
		k.h.sessions.restore(k.h.broker, cl)
	}
	old, ok := k.h.broker.Clients.Get(cl.ID)
	if !ok || old == cl {
		return
	}
	k.kick(old)
	if k.h.opts.Faults.ForgetSubscriptions {
		k.h.broker.UnsubscribeClient(old)
	}
}

// kick closes a replaced connection (no DISCONNECT packet: MQTT 3.1.1
// servers just close, as the real hub does).
func (k *hook) kick(old *mqtt.Client) {
	if old.Closed() {
		return
	}
	k.h.logConn(slog.LevelInfo, "mqtt connection kicked", old, logkey.Reason, ErrKicked.Error())
	k.h.emit(Event{Kind: EventKicked, ClientID: old.ID})
	old.Stop(ErrKicked)
}

// OnPacketEncode records the live session as its successful CONNACK is
// about to be written: mochi sends the CONNACK before OnSessionEstablished,
// and a device that inherited the methods subscription (clean session 0,
// no new SUBSCRIBE) is deliverable from the moment it holds its CONNACK.
// The inherited subscriptions are already in place here. Writers wait for
// OnPacketSent (presence.connackWritten): this hook runs before mochi takes
// the client's write lock, and nothing may overtake the CONNACK.
func (k *hook) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if isConnackOK(pk) {
		if k.h.sessions.takeRestored(cl) {
			pk.SessionPresent = true
		}
		_, subscribed := cl.State.Subscriptions.Get(iothub.MethodsSubscription)
		k.h.presence.set(cl.ID, newSession(cl, subscribed))
	}
	return pk
}

// OnPacketSent releases the writers waiting for the CONNACK.
func (k *hook) OnPacketSent(cl *mqtt.Client, pk packets.Packet, _ []byte) {
	if isConnackOK(pk) {
		k.h.presence.connacked(cl)
	}
}

func isConnackOK(pk packets.Packet) bool {
	return pk.FixedHeader.Type == packets.Connack && pk.ReasonCode == packets.CodeSuccess.Code
}

// OnSessionEstablished arms the token-expiry timer of the session recorded
// at its CONNACK (SAS identities: an X.509 identity's password is
// ignored), then logs and reports the connection.
func (k *hook) OnSessionEstablished(cl *mqtt.Client, pk packets.Packet) {
	id, _ := k.h.reg.lookup(cl.ID)
	if tok, err := iothub.ParseSAS(string(pk.Connect.Password)); err == nil && id.authType() == authSAS {
		k.h.presence.arm(cl, k.h.expireAt(cl, tok.Expiry))
	}
	_, subscribed := cl.State.Subscriptions.Get(iothub.MethodsSubscription)
	k.h.logConn(slog.LevelInfo, "mqtt connected", cl, logkey.CleanSession, pk.Connect.Clean,
		logkey.Keepalive, cl.State.Keepalive, logkey.MethodsSubscribed, subscribed)
	k.h.emit(Event{Kind: EventConnected, ClientID: cl.ID, CleanSession: pk.Connect.Clean, Subscribed: subscribed})
}

// OnDisconnect forgets the session, then logs and reports why it ended.
func (k *hook) OnDisconnect(cl *mqtt.Client, err error, _ bool) {
	k.h.sessions.forget(cl)
	if s := k.h.presence.remove(cl); s != nil && s.timer != nil {
		s.timer.Stop()
	}
	cause := disconnectCause(cl, err)
	if !errors.Is(cause, ErrKicked) { // a kick is logged as such
		reason := "client disconnected"
		if cause != nil {
			reason = cause.Error()
		}
		k.h.logConn(slog.LevelInfo, "mqtt disconnected", cl, logkey.Reason, reason)
	}
	k.h.emit(Event{Kind: EventDisconnected, ClientID: cl.ID, Err: cause})
}

// disconnectCause is why cl ended: nil when it sent DISCONNECT, else the
// reason it was stopped for, else the error that ended its read loop.
func disconnectCause(cl *mqtt.Client, err error) error {
	cause := cl.StopCause()
	switch {
	case errors.Is(cause, packets.CodeDisconnect):
		return nil
	case cause != nil:
		return cause
	}
	return err
}

// OnPacketRead enforces the topic rules of §3.3 before the broker acts on a
// packet. A violation returns ErrRejectPacket (wrapping ErrForbidden), which
// ends the connection.
func (k *hook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	var err error
	switch pk.FixedHeader.Type {
	case packets.Publish:
		err = k.h.checkPublish(cl.ID, pk)
	case packets.Subscribe:
		err = k.h.checkSubscribe(cl, pk)
	}
	if err != nil {
		return pk, fmt.Errorf("%w: %w", packets.ErrRejectPacket, err)
	}
	return pk, nil
}

// OnSubscribed marks the identity subscribed to methods once the broker
// granted the filter (before the SUBACK is written, so a caller never sees
// a subscribed device fail with 404103), and saves a persistent session's
// subscriptions.
func (k *hook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, codes []byte) {
	k.h.recordSession(cl)
	for i, f := range pk.Filters {
		if f.Filter == iothub.MethodsSubscription && i < len(codes) && codes[i] < 0x80 {
			if k.h.presence.setSubscribed(cl, true) {
				k.h.emit(Event{Kind: EventSubscribed, ClientID: cl.ID})
			}
		}
	}
}

// OnUnsubscribed marks the identity no longer subscribed to methods and
// saves a persistent session's subscriptions.
func (k *hook) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	k.h.recordSession(cl)
	for _, f := range pk.Filters {
		if f.Filter == iothub.MethodsSubscription {
			if k.h.presence.setSubscribed(cl, false) {
				k.h.emit(Event{Kind: EventUnsubscribed, ClientID: cl.ID})
			}
		}
	}
}

// OnPublish consumes everything a device may publish: method replies go to
// their pending call (or are logged, reported and dropped), twin requests
// are answered on cl, telemetry is accepted and discarded. Nothing reaches
// other subscribers; QoS 1 publishes are still acknowledged.
func (k *hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if iothub.IsTwinRequestTopic(pk.TopicName) {
		k.h.handleTwinRequest(cl, pk.TopicName, pk.Payload)
		return pk, packets.CodeSuccessIgnore
	}
	if iothub.IsMethodResponseTopic(pk.TopicName) {
		if status, rid, err := iothub.ParseMethodResponseTopic(pk.TopicName); err == nil {
			k.h.deliver(cl, rid, reply{status: status, payload: pk.Payload})
		}
	}
	return pk, packets.CodeSuccessIgnore
}

// deliver hands a reply from cl to its pending call, or logs and reports
// why it was dropped.
func (h *Hub) deliver(cl *mqtt.Client, rid string, r reply) {
	err := h.calls.resolve(cl.ID, rid, r)
	if err == nil {
		return
	}
	h.log.Warn("method reply dropped", logkey.ClientID, cl.ID, logkey.RequestID, rid,
		logkey.Status, r.status, logkey.Reason, err.Error())
	h.emit(Event{Kind: EventReplyDropped, ClientID: cl.ID, RequestID: rid, Status: r.status, Err: err})
}

// expireAt disconnects cl when its token expires, reporting
// EventTokenExpired. Scheduling uses real timers; the decision uses
// Options.Now, so a test clock can hold it off.
func (h *Hub) expireAt(cl *mqtt.Client, expiry time.Time) *time.Timer {
	var fire func()
	fire = func() {
		if cl.Closed() {
			return
		}
		if d := expiry.Sub(h.opts.Now()); d > 0 {
			time.AfterFunc(d, fire)
			return
		}
		h.logConn(slog.LevelInfo, "mqtt token expired", cl, logkey.Expiry, expiry)
		h.emit(Event{Kind: EventTokenExpired, ClientID: cl.ID, Expiry: expiry})
		cl.Stop(ErrTokenExpired)
	}
	return time.AfterFunc(max(expiry.Sub(h.opts.Now()), 0), fire)
}

// logConn logs one connection event with the client's identity and address.
func (h *Hub) logConn(level slog.Level, msg string, cl *mqtt.Client, attrs ...any) {
	attrs = append([]any{logkey.ClientID, cl.ID, logkey.Remote, cl.Net.Remote, logkey.Listener, cl.Net.Listener}, attrs...)
	h.log.Log(context.Background(), level, msg, attrs...)
}

// recordSession saves cl's subscriptions when its session is persistent
// (forgets them when it is clean). A failed write is logged: the session
// works on, it just would not survive a hub restart.
func (h *Hub) recordSession(cl *mqtt.Client) {
	if err := h.sessions.record(cl); err != nil {
		h.log.Error("persistent session not saved", logkey.ClientID, cl.ID, logkey.Err, err)
	}
}
