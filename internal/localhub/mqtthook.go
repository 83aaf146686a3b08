package localhub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/methodd/methodd/iothub"
)

// Limits the real hub applies to device connections (§3.2, §3.3).
const (
	maxSubscriptions = 5
	maxKeepalive     = 1177 // seconds; the hub closes after 1.5 × keep-alive, capped at 1767 s
	mqttVersion311   = 4
)

// Reasons a connection ends, as logged and as seen in OnDisconnect.
var (
	errKicked       = errors.New("a new connection of the same identity replaced this one")
	errTokenExpired = errors.New("SAS token expired on a live connection")
	errShuttingDown = errors.New("the hub is shutting down")
)

// hook is the broker hook that makes mochi behave like IoT Hub: SAS
// authentication, one connection per identity, IoT Hub topics only, method
// replies routed to pending calls.
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
		k.h.logConn(slog.LevelWarn, "mqtt connection refused", cl, "reason", fmt.Sprintf("MQTT protocol level %d; only 3.1.1 (4) is supported", pk.ProtocolVersion))
		_ = k.h.broker.SendConnack(cl, packets.ErrUnsupportedProtocolVersion, false, nil)
		return packets.ErrUnsupportedProtocolVersion
	}
	if cl.State.Keepalive == 0 || cl.State.Keepalive > maxKeepalive {
		cl.State.Keepalive = maxKeepalive
	}
	return nil
}

// OnConnectAuthenticate verifies username, client id and SAS password; on
// failure the broker answers CONNACK 5 (not authorized) and no existing
// session is touched.
func (k *hook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	if _, err := k.h.authenticate(pk); err != nil {
		k.h.logConn(slog.LevelWarn, "mqtt connection refused", cl, "reason", err.Error())
		return false
	}
	return true
}

// OnACLCheck allows everything: topic rules are enforced in OnPacketRead,
// where a violation can disconnect the client as the real hub does.
func (k *hook) OnACLCheck(*mqtt.Client, string, bool) bool { return true }

// OnSessionEstablish runs after authentication and before the broker takes
// over any previous session of the same client id: the live connection, if
// any, is kicked (one connection per identity, §3.1), and calls wait for
// cl's CONNACK instead of finding the identity offline (presence.takeover).
func (k *hook) OnSessionEstablish(cl *mqtt.Client, pk packets.Packet) {
	if live := k.h.presence.takeover(cl); live != nil {
		k.kick(live)
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
	k.h.logConn(slog.LevelInfo, "mqtt connection kicked", old, "reason", errKicked.Error())
	old.Stop(errKicked)
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
// at its CONNACK and logs the connection.
func (k *hook) OnSessionEstablished(cl *mqtt.Client, pk packets.Packet) {
	if tok, err := iothub.ParseSAS(string(pk.Connect.Password)); err == nil {
		k.h.presence.arm(cl, k.h.expireAt(cl, tok.Expiry))
	}
	_, subscribed := cl.State.Subscriptions.Get(iothub.MethodsSubscription)
	k.h.logConn(slog.LevelInfo, "mqtt connected", cl, "cleanSession", pk.Connect.Clean,
		"keepalive", cl.State.Keepalive, "methodsSubscribed", subscribed)
}

// OnDisconnect forgets the session and logs why it ended.
func (k *hook) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	if s := k.h.presence.remove(cl); s != nil && s.timer != nil {
		s.timer.Stop()
	}
	cause := cl.StopCause()
	if errors.Is(cause, errKicked) {
		return // already logged as kicked
	}
	reason := "client disconnected"
	switch {
	case cause != nil:
		reason = cause.Error()
	case err != nil:
		reason = err.Error()
	}
	k.h.logConn(slog.LevelInfo, "mqtt disconnected", cl, "reason", reason)
}

// OnPacketRead enforces the topic rules of §3.3 before the broker acts on a
// packet. A violation returns ErrRejectPacket, which ends the connection.
func (k *hook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	var err error
	switch pk.FixedHeader.Type {
	case packets.Publish:
		err = k.h.checkPublish(cl.ID, pk)
	case packets.Subscribe:
		err = k.h.checkSubscribe(cl, pk)
	}
	if err != nil {
		return pk, fmt.Errorf("%w: %v", packets.ErrRejectPacket, err)
	}
	return pk, nil
}

// OnSubscribed marks the identity subscribed to methods once the broker
// granted the filter (before the SUBACK is written, so a caller never sees
// a subscribed device fail with 404103).
func (k *hook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, codes []byte) {
	for i, f := range pk.Filters {
		if f.Filter == iothub.MethodsSubscription && i < len(codes) && codes[i] < 0x80 {
			k.h.presence.setSubscribed(cl, true)
		}
	}
}

func (k *hook) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	for _, f := range pk.Filters {
		if f.Filter == iothub.MethodsSubscription {
			k.h.presence.setSubscribed(cl, false)
		}
	}
}

// OnPublish consumes everything a device may publish: method replies go to
// their pending call, telemetry is accepted and discarded. Nothing reaches
// other subscribers; QoS 1 publishes are still acknowledged.
func (k *hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if iothub.IsMethodResponseTopic(pk.TopicName) {
		if status, rid, err := iothub.ParseMethodResponseTopic(pk.TopicName); err == nil {
			k.h.calls.resolve(cl.ID, rid, reply{status: status, payload: pk.Payload})
		}
	}
	return pk, packets.CodeSuccessIgnore
}

// authenticate checks a CONNECT packet (§3.2) and returns the SAS expiry.
func (h *Hub) authenticate(pk packets.Packet) (time.Time, error) {
	u, err := iothub.ParseUsername(string(pk.Connect.Username))
	if err != nil {
		return time.Time{}, fmt.Errorf("username: %w", err)
	}
	if !h.isHubHost(u.Host) {
		return time.Time{}, fmt.Errorf("username host %q is not this hub (%s)", u.Host, HostName)
	}
	if u.ClientID != pk.Connect.ClientIdentifier {
		return time.Time{}, fmt.Errorf("client id %q differs from the username's %q", pk.Connect.ClientIdentifier, u.ClientID)
	}
	device, module := iothub.SplitClientID(u.ClientID)
	key, ok := h.reg.key(u.ClientID)
	if !ok {
		return time.Time{}, fmt.Errorf("identity %q is not registered", u.ClientID)
	}
	if !pk.Connect.PasswordFlag {
		return time.Time{}, errors.New("no password (SAS token) given; X.509 client certificates are not supported")
	}
	tok, err := iothub.ParseSAS(string(pk.Connect.Password))
	if err != nil {
		return time.Time{}, fmt.Errorf("password: %w", err)
	}
	if tok.SKN != "" { // a device signing with a hub policy key (§1.1)
		if key, ok = h.reg.policyKey(tok.SKN); !ok || tok.SKN != policyOwner {
			return time.Time{}, fmt.Errorf("policy %q may not connect devices", tok.SKN)
		}
	}
	if err := tok.Verify(key, h.opts.Now()); err != nil {
		return time.Time{}, err
	}
	if err := h.checkAudience(tok, iothub.IdentityResource(HostName, device, module)); err != nil {
		return time.Time{}, err
	}
	if pk.Connect.WillFlag && !isTelemetryTopic(u.ClientID, pk.Connect.WillTopic) {
		return time.Time{}, fmt.Errorf("will topic %q is not this identity's telemetry topic", pk.Connect.WillTopic)
	}
	return tok.Expiry, nil
}

// isHubHost reports whether host names this hub, with or without a port.
func (h *Hub) isHubHost(host string) bool {
	if strings.EqualFold(host, HostName) {
		return true
	}
	name, _, err := net.SplitHostPort(host)
	return err == nil && strings.EqualFold(name, HostName)
}

// checkAudience verifies that the token's resource covers target; the host
// segment of the resource may carry a port (clients sign the HostName they
// were given, and the service string's HostName has one).
func (h *Hub) checkAudience(tok iothub.SAS, target string) error {
	res, err := tok.Resource()
	if err != nil {
		return err
	}
	host, rest, _ := strings.Cut(res, "/")
	if !h.isHubHost(host) {
		return fmt.Errorf("%w: resource host %q", iothub.ErrSASAudience, host)
	}
	granted := HostName
	if rest != "" {
		granted += "/" + rest
	}
	if !iothub.ResourceCovers(granted, target) {
		return fmt.Errorf("%w: %q does not cover %q", iothub.ErrSASAudience, res, target)
	}
	return nil
}

// expireAt disconnects cl when its token expires. Scheduling uses real
// timers; the decision uses Options.Now, so a test clock can hold it off.
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
		h.logConn(slog.LevelInfo, "mqtt token expired", cl, "expiry", expiry)
		cl.Stop(errTokenExpired)
	}
	return time.AfterFunc(max(expiry.Sub(h.opts.Now()), 0), fire)
}

// checkPublish allows method replies and the identity's own telemetry, at
// QoS 0 or 1 (§3.3, §4.3).
func (h *Hub) checkPublish(clientID string, pk packets.Packet) error {
	if pk.FixedHeader.Qos > 1 {
		return fmt.Errorf("publish with QoS %d to %q", pk.FixedHeader.Qos, pk.TopicName)
	}
	if iothub.IsMethodResponseTopic(pk.TopicName) {
		if _, _, err := iothub.ParseMethodResponseTopic(pk.TopicName); err != nil {
			return fmt.Errorf("publish to %q: %w", pk.TopicName, err)
		}
		return nil
	}
	if isTelemetryTopic(clientID, pk.TopicName) {
		return nil
	}
	return fmt.Errorf("publish to %q is not allowed", pk.TopicName)
}

// isTelemetryTopic reports whether topic is clientID's device-to-cloud topic:
// devices/{d}/messages/events/... or devices/{d}/modules/{m}/messages/events/...
func isTelemetryTopic(clientID, topic string) bool {
	device, module := iothub.SplitClientID(clientID)
	prefix := "devices/" + device + "/messages/events"
	if module != "" {
		prefix = "devices/" + device + "/modules/" + module + "/messages/events"
	}
	rest, ok := strings.CutPrefix(topic, prefix)
	return ok && (rest == "" || rest[0] == '/')
}

// checkSubscribe allows the documented IoT Hub filters only, at most
// maxSubscriptions per session (§3.3). Twin and cloud-to-device filters are
// granted (the real hub grants them) but nothing is ever published there.
func (h *Hub) checkSubscribe(cl *mqtt.Client, pk packets.Packet) error {
	device, module := iothub.SplitClientID(cl.ID)
	allowed := map[string]bool{
		iothub.MethodsSubscription:                true,
		"$iothub/twin/res/#":                      true,
		"$iothub/twin/PATCH/properties/desired/#": true,
	}
	if module == "" {
		allowed["devices/"+device+"/messages/devicebound/#"] = true
	}
	total := map[string]bool{}
	for f := range cl.State.Subscriptions.GetAll() {
		total[f] = true
	}
	for _, f := range pk.Filters {
		if !allowed[f.Filter] {
			return fmt.Errorf("subscribe to %q is not allowed", f.Filter)
		}
		total[f.Filter] = true
	}
	if len(total) > maxSubscriptions {
		return fmt.Errorf("more than %d subscriptions", maxSubscriptions)
	}
	return nil
}

// logConn logs one connection event with the client's identity and address.
func (h *Hub) logConn(level slog.Level, msg string, cl *mqtt.Client, attrs ...any) {
	attrs = append([]any{"clientId", cl.ID, "remote", cl.Net.Remote, "listener", cl.Net.Listener}, attrs...)
	h.log.Log(context.Background(), level, msg, attrs...)
}
