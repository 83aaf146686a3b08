package localhub

import (
	"errors"
	"strconv"
	"time"
)

// EventKind names what happened in an Event.
type EventKind int

// The kinds of hub event. Each names the Event fields it sets; the others
// are zero. ClientID is always set.
const (
	// EventConnRefused: a CONNECT was refused and is answered with a
	// CONNACK whose return code is ReturnCode (for MQTT 3.1.1 clients
	// ReturnCodeBadProtocol or ReturnCodeNotAuthorized). Err says why: it
	// wraps ErrProtocolVersion, ErrUsername, ErrClientID,
	// ErrUnknownIdentity, ErrIdentityDisabled, ErrNoPassword, ErrPolicy,
	// ErrWillTopic or one of iothub's ErrSAS* errors. ClientID is the client id as sent,
	// registered or not. No session is touched.
	EventConnRefused EventKind = iota + 1
	// EventConnected: a connection was accepted: its CONNACK is written and
	// it replaced any earlier connection of the identity. CleanSession is
	// the CONNECT's flag; Subscribed reports whether it held the methods
	// subscription from its CONNACK on (inherited from a persistent
	// session).
	EventConnected
	// EventSubscribed: the live connection was granted the methods
	// subscription ($iothub/methods/POST/#); calls are delivered to it.
	EventSubscribed
	// EventUnsubscribed: the live connection gave up the methods
	// subscription.
	EventUnsubscribed
	// EventKicked: a live connection is being closed because a new
	// connection of the same identity took over (one live connection per
	// identity). Its EventDisconnected follows, normally with ErrKicked.
	EventKicked
	// EventTokenExpired: a live connection is being closed because its SAS
	// token expired at Expiry. Its EventDisconnected follows, normally with
	// ErrTokenExpired.
	EventTokenExpired
	// EventDisconnected: a connection that had been accepted ended. Err is
	// nil when the client sent DISCONNECT; otherwise it says why: ErrKicked,
	// ErrTokenExpired, ErrShuttingDown, ErrIdentityDisabled or
	// ErrIdentityDeleted (the registry changed), an error wrapping ErrForbidden (a
	// topic, QoS or subscription count the hub does not allow, §3.3), or
	// the network or protocol error that ended it.
	EventDisconnected
	// EventReplyDropped: a method reply was discarded. RequestID and Status
	// are the reply's $rid and status; Err is ErrUnknownRequestID (no call
	// waits for that $rid: late, duplicate or made up) or ErrForeignReply
	// (the call's request went to another identity, which is still
	// awaited).
	EventReplyDropped
)

// String returns the kind's name, e.g. "conn-refused", or "EventKind(N)" for
// a value that is not a kind.
func (k EventKind) String() string {
	switch k {
	case EventConnRefused:
		return "conn-refused"
	case EventConnected:
		return "connected"
	case EventSubscribed:
		return "subscribed"
	case EventUnsubscribed:
		return "unsubscribed"
	case EventKicked:
		return "kicked"
	case EventTokenExpired:
		return "token-expired"
	case EventDisconnected:
		return "disconnected"
	case EventReplyDropped:
		return "reply-dropped"
	}
	return "EventKind(" + strconv.Itoa(int(k)) + ")"
}

// Event is one thing that happened on the hub's device side, as reported
// to Options.OnEvent. Which fields are set depends on Kind (see the kinds).
//
// An event is reported once the hub's state reflects it: after
// EventDisconnected a call no longer finds that connection, after
// EventSubscribed or an EventConnected with Subscribed a call is delivered
// to it.
type Event struct {
	Kind         EventKind
	ClientID     string    // the connection's client id: "device" or "device/module"
	ReturnCode   byte      // EventConnRefused: the CONNACK code sent (MQTT 3.1.1's below MQTT 5)
	Err          error     // EventConnRefused, EventDisconnected, EventReplyDropped: why
	CleanSession bool      // EventConnected: the CONNECT's clean-session flag
	Subscribed   bool      // EventConnected: holds the methods subscription at its CONNACK
	Expiry       time.Time // EventTokenExpired: the token's expiry (se)
	RequestID    string    // EventReplyDropped: the reply's $rid
	Status       int       // EventReplyDropped: the reply's status
}

// CONNACK return codes of refused connections (MQTT 3.1.1, §3.2).
const (
	ReturnCodeBadProtocol   byte = 1 // unacceptable protocol version
	ReturnCodeNotAuthorized byte = 5 // not authorized
)

// Why the hub refuses a CONNECT (Event.Err of EventConnRefused). Token
// problems wrap iothub.ErrSASMalformed, ErrSASSignature, ErrSASExpired or
// ErrSASAudience instead, and certificate problems of an X.509 identity
// wrap ErrCertificate (x509.go).
var (
	ErrProtocolVersion = errors.New("only MQTT 3.1.1 (protocol level 4) is supported")
	ErrUsername        = errors.New("username is malformed or names another hub")
	ErrClientID        = errors.New("client id differs from the username's")
	ErrUnknownIdentity = errors.New("identity is not registered")
	ErrNoPassword      = errors.New("no password (SAS token) given for a SAS identity")
	ErrPolicy          = errors.New("policy may not connect devices")
	ErrWillTopic       = errors.New("will topic is not the identity's telemetry topic")
)

// Why the hub ends an accepted connection (Event.Err of EventDisconnected).
var (
	ErrKicked       = errors.New("a new connection of the same identity replaced this one")
	ErrTokenExpired = errors.New("SAS token expired on a live connection")
	ErrShuttingDown = errors.New("the hub is shutting down")
	ErrForbidden    = errors.New("traffic the IoT Hub does not allow")
)

// Why the hub drops a method reply (Event.Err of EventReplyDropped).
var (
	ErrUnknownRequestID = errors.New("unknown or expired $rid")
	ErrForeignReply     = errors.New("$rid belongs to another identity")
)

// emit hands e to Options.OnEvent, if set.
func (h *Hub) emit(e Event) {
	if h.opts.OnEvent != nil {
		h.opts.OnEvent(e)
	}
}
