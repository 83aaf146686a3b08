package localhub

import (
	"fmt"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/methodd/methodd/internal/logkey"
	"github.com/methodd/methodd/iothub"
)

// dpsHook makes the DPS broker behave like DPS over MQTT (§5): DPS
// usernames, clean sessions only, the response subscription only,
// register and poll publishes only, answered on the publishing connection.
type dpsHook struct {
	mqtt.HookBase
	s *dpsServer
}

func (k *dpsHook) ID() string { return "dps" }

func (k *dpsHook) Provides(b byte) bool {
	switch b {
	case mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnSessionEstablished,
		mqtt.OnDisconnect, mqtt.OnPacketRead, mqtt.OnPublish:
		return true
	}
	return false
}

// OnConnect checks the protocol and the username. CONNACK return codes
// (MQTT 3.1.1; what real DPS sends for these was not captured, so the
// closest standard code is used): 1 for a protocol other than 3.1.1; 4
// (bad user name or password) for a username that is not a DPS username
// (§5.1); 5 (not authorised) for another id scope; 2 (identifier
// rejected) when the username's registration id is not the client id.
// The SAS is not checked here: real DPS accepts the CONNECT and refuses
// the register request with 401 (§5.2). Every session is made clean: DPS
// "treats every session as non-persistent" (§5.1).
func (k *dpsHook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	code, err := k.s.checkConnect(cl, pk)
	if err == nil {
		cl.Properties.Clean = true
		return nil
	}
	k.s.log.Warn("dps connection refused", logkey.ClientID, cl.ID, logkey.Remote, cl.Net.Remote,
		logkey.Listener, cl.Net.Listener, logkey.Reason, err.Error())
	_ = k.s.broker.SendConnack(cl, code, false, nil)
	return code
}

// checkConnect returns the refusal code and reason of a CONNECT, or nil.
func (s *dpsServer) checkConnect(cl *mqtt.Client, pk packets.Packet) (packets.Code, error) {
	if pk.ProtocolVersion != mqttVersion311 {
		return packets.ErrUnsupportedProtocolVersion, fmt.Errorf("%w: got protocol level %d", ErrProtocolVersion, pk.ProtocolVersion)
	}
	scope, reg, err := iothub.ParseDPSUsername(string(pk.Connect.Username))
	if err != nil {
		return packets.ErrMalformedUsername, fmt.Errorf("%w: %w", ErrUsername, err)
	}
	s.mu.Lock()
	want := s.doc.IDScope
	s.mu.Unlock()
	if scope != want {
		return packets.ErrBadUsernameOrPassword, fmt.Errorf("%w: id scope %q is not this DPS's", ErrUsername, scope)
	}
	if reg != cl.ID {
		return packets.ErrClientIdentifierNotValid, fmt.Errorf("%w: registration id %q is not the client id", ErrClientID, reg)
	}
	return packets.CodeSuccess, nil
}

// OnConnectAuthenticate admits every CONNECT OnConnect let through.
func (k *dpsHook) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }

// OnACLCheck grants the response subscription only (other filters get
// SUBACK 0x80); publishes are checked in OnPacketRead.
func (k *dpsHook) OnACLCheck(_ *mqtt.Client, topic string, write bool) bool {
	return write || topic == iothub.DPSResponseSubscription
}

// OnSessionEstablished remembers the login for the requests to come.
func (k *dpsHook) OnSessionEstablished(cl *mqtt.Client, pk packets.Packet) {
	k.s.mu.Lock()
	chain, _ := peerCertificates(cl.Net.Conn) // a failed handshake never gets here
	k.s.conns[cl] = dpsLogin{registrationID: cl.ID, password: string(pk.Connect.Password), chain: chain}
	k.s.mu.Unlock()
	k.s.log.Debug("dps connected", logkey.RegistrationID, cl.ID, logkey.Remote, cl.Net.Remote, logkey.Listener, cl.Net.Listener)
}

// OnDisconnect forgets the login.
func (k *dpsHook) OnDisconnect(cl *mqtt.Client, err error, _ bool) {
	k.s.mu.Lock()
	delete(k.s.conns, cl)
	k.s.mu.Unlock()
	k.s.log.Debug("dps disconnected", logkey.RegistrationID, cl.ID, logkey.Reason, fmt.Sprint(disconnectCause(cl, err)))
}

// OnPacketRead closes the connection on a publish to a topic other than
// register and poll, or at QoS 2, as IoT Hub does for undocumented topics.
func (k *dpsHook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type != packets.Publish {
		return pk, nil
	}
	if pk.FixedHeader.Qos > 1 {
		return pk, fmt.Errorf("%w: %w: publish with QoS 2", packets.ErrRejectPacket, ErrForbidden)
	}
	if _, _, _, err := iothub.ParseDPSRequestTopic(pk.TopicName); err != nil {
		return pk, fmt.Errorf("%w: %w: publish to %q", packets.ErrRejectPacket, ErrForbidden, pk.TopicName)
	}
	return pk, nil
}

// OnPublish answers register and poll requests on cl; nothing is routed
// to subscribers. QoS 1 requests are still acknowledged.
func (k *dpsHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	k.s.handle(cl, pk.TopicName, pk.Payload)
	return pk, packets.CodeSuccessIgnore
}
