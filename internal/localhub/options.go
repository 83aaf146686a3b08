package localhub

import (
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/methodd/methodd/iothub"
)

// Default listen addresses (design §1).
const (
	DefaultMQTTAddr  = "127.0.0.1:8883"
	DefaultHTTPSAddr = "127.0.0.1:8443"
)

// HostName is the hub's host name: the HostName of every connection string,
// the host in MQTT usernames and the SAS audience. The server certificate
// covers it.
const HostName = "localhost"

// Options configures Start. The zero value (plus Dir) is a faithful hub on
// the default loopback ports.
type Options struct {
	Dir              string           // state dir (created 0700, files 0600); required
	MQTTAddr         string           // "127.0.0.1:0" picks a free port; default DefaultMQTTAddr
	HTTPSAddr        string           // default DefaultHTTPSAddr
	WSAddr           string           // "" = no WebSocket listener; else MQTT over WSS at /$iothub/websocket
	Devices          []string         // identities to register: "id" or "id/module" (idempotent; keys persist in Dir)
	DefaultDevice    string           // "id" or "id/module" registered only when no identity is registered at all
	AllowNonLoopback bool             // refuse non-loopback listen addresses unless set
	Logger           *slog.Logger     // nil = discard
	Now              func() time.Time // nil = time.Now; used for SAS expiry checks
	Faults           Faults           // test-only switches, zero = faithful

	// X509Devices are device ids to register with X.509 (CA-signed)
	// authentication: each gets a device certificate and key issued from
	// the hub's CA into Dir (reused by later starts), listed in
	// Info.X509 (x509.go).
	X509Devices []string

	// DPSAddr, when set, serves a Device Provisioning Service endpoint
	// there (MQTT over TLS, the hub's CA; dps.go). IDScope is its id scope
	// ("" = generated once and kept in Dir). EnrollmentGroups are the names
	// of symmetric-key enrollment groups and Enrollments the registration
	// ids of individual symmetric-key enrollments to create (idempotent:
	// keys are generated once and kept in Dir). They are listed in
	// Info.DPS.
	DPSAddr          string
	IDScope          string
	EnrollmentGroups []string
	Enrollments      []string
	// X509EnrollmentGroups are the names of X.509 CA enrollment groups to
	// create: a device registers through one with a client certificate
	// that chains to the CAs certificateAuthority identities use (the
	// hub's CA and DIR/x509/cas) and whose CN is its registration id; it
	// is assigned as a certificateAuthority identity.
	X509EnrollmentGroups []string
	// DPSWSAddr, when set (with DPSAddr), also serves the provisioning
	// endpoint as MQTT over WSS at /$iothub/websocket (Info.DPS.WSAddr).
	DPSWSAddr string

	// OnEvent, when set, is called with every Event: refused, accepted,
	// kicked, expired and ended connections, methods subscriptions and
	// dropped replies, in addition to the logs. It is called synchronously
	// from the goroutine that handles the connection (or a timer's), from
	// several at once, and the connection waits for it: it must be safe for
	// concurrent use and must not block, so it must not call Invoke or
	// Close either. The Event and its Err may be kept.
	OnEvent func(Event)

	// Network bounds (issue 19, class 3; zero = the default named).
	// ConnectTimeout bounds a device connection's TLS handshake, WSS
	// upgrade and CONNECT (DefaultConnectTimeout); RequestTimeout a REST
	// request's TLS handshake and headers, its body, and each response
	// write (DefaultRequestTimeout); IdleTimeout an idle keep-alive HTTPS
	// connection (DefaultIdleTimeout). MaxPendingConns caps, per
	// listener, the connections that have not yet authenticated (MQTT:
	// before their successful CONNACK; HTTPS: before their first
	// authorized request); past it new connections are closed at once
	// (DefaultMaxPendingConns).
	ConnectTimeout  time.Duration
	RequestTimeout  time.Duration
	IdleTimeout     time.Duration
	MaxPendingConns int
}

// Defaults of the network bounds in Options.
const (
	DefaultConnectTimeout  = 30 * time.Second
	DefaultRequestTimeout  = 30 * time.Second
	DefaultIdleTimeout     = 2 * time.Minute
	DefaultMaxPendingConns = 256
)

// Faults deliberately break one behaviour each, so conformance tests can
// prove they detect it. The zero value breaks nothing.
type Faults struct {
	ForgetSubscriptions bool // a reconnect with clean session 0 loses the methods subscription
	EmptyNullPayload    bool // a null request payload reaches the device as an empty body instead of "null"
	OmitJSONContentType bool // REST success responses lack "Content-Type: application/json; charset=utf-8"
	EmptyTwinErrorBody  bool // twin error responses on MQTT have an empty body (the Node SDK then reports success)
	DPSThrottle         int  // the first N DPS requests (register or poll) are answered 429 with retry-after=1
	DPSSilent           bool // DPS requests are never answered (a service that hangs)
}

// WebSocketPath is the HTTP path of MQTT over WebSockets (§3.1).
const WebSocketPath = "/$iothub/websocket"

// withDefaults fills in defaults and validates the options.
func (o Options) withDefaults() (Options, error) {
	if o.Dir == "" {
		return o, fmt.Errorf("localhub: Options.Dir is required")
	}
	if o.MQTTAddr == "" {
		o.MQTTAddr = DefaultMQTTAddr
	}
	if o.HTTPSAddr == "" {
		o.HTTPSAddr = DefaultHTTPSAddr
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = DefaultRequestTimeout
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.MaxPendingConns <= 0 {
		o.MaxPendingConns = DefaultMaxPendingConns
	}
	for _, a := range []string{o.MQTTAddr, o.HTTPSAddr, o.WSAddr, o.DPSAddr} {
		if a == "" {
			continue
		}
		if err := checkAddr(a, o.AllowNonLoopback); err != nil {
			return o, err
		}
	}
	return o, nil
}

// checkAddr refuses addresses that are not loopback unless allowed.
func checkAddr(addr string, allowNonLoopback bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("localhub: listen address %q: %w", addr, err)
	}
	if allowNonLoopback || strings.EqualFold(host, "localhost") {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("localhub: listen address %q is not loopback; set AllowNonLoopback (--allow-non-loopback) to expose the hub", addr)
}

// parseIdentity splits "id" or "id/module".
func parseIdentity(s string) (device, module string, err error) {
	device, module = iothub.SplitClientID(s)
	if device == "" || strings.Contains(module, "/") || (strings.Contains(s, "/") && module == "") {
		return "", "", fmt.Errorf("localhub: identity %q: want ID or ID/MODULE", s)
	}
	return device, module, nil
}
