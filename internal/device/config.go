package device

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/methodd/methodd/iothub"
)

// Transports accepted in Config.Transport.
const (
	TransportMQTT   = "mqtt"    // MQTT over TLS, port 8883 by default
	TransportMQTTWS = "mqtt-ws" // MQTT over WebSockets, port 443 by default
)

// Defaults applied by New to zero Config fields.
const (
	DefaultSASTTL       = time.Hour
	DefaultKeepAlive    = 180 * time.Second // the Node SDK's value (§3.2)
	DefaultBackoffMin   = time.Second
	DefaultBackoffMax   = 30 * time.Second
	DefaultDrainTimeout = 10 * time.Second
	DefaultMaxInFlight  = 1024
	DefaultDialTimeout  = 30 * time.Second
)

// renewFraction is the part of a token's lifetime after which the session
// reconnects with a fresh one (the C SDK's 80 %, §2.3).
const renewFraction = 0.8

// Config describes one device or module session. Identity is required; every
// other zero field takes its default.
type Config struct {
	// Identity is the parsed device or module connection string. It holds a
	// secret and is never logged.
	Identity iothub.ConnectionString
	// Transport is TransportMQTT (default) or TransportMQTTWS.
	Transport string
	// RootCAs verifies the server; nil means the system roots.
	RootCAs *x509.CertPool
	// ClientCert authenticates an x509=true identity.
	ClientCert *tls.Certificate
	// ProductInfo is sent as DeviceClientType in the username (for example
	// "methodd/1.2.3"); empty sends none.
	ProductInfo string
	// SASTTL is the lifetime of the tokens the session mints (default 1h);
	// it reconnects with a fresh token at about 80 % of it.
	SASTTL time.Duration
	// KeepAlive is the MQTT keep-alive (default 180s).
	KeepAlive time.Duration
	// BackoffMin and BackoffMax bound the exponential reconnect delay
	// (defaults 1s and 30s); each delay is jittered.
	BackoffMin, BackoffMax time.Duration
	// DialTimeout bounds one connection attempt: dial, TLS, CONNECT and
	// SUBSCRIBE (default 30s).
	DialTimeout time.Duration
	// DrainTimeout bounds the wait for in-flight handlers at shutdown
	// (default 10s). Their context is cancelled when it expires.
	DrainTimeout time.Duration
	// MaxInFlight bounds concurrently running handlers (default 1024);
	// requests beyond it get an immediate 503 reply.
	MaxInFlight int
	// Logger receives lifecycle and per-failure lines (default: discard).
	Logger *slog.Logger
	// Now is the clock used for token expiry (default time.Now).
	Now func() time.Time
	// OnState, if set, is called on every state change, synchronously from
	// the session's goroutine; it must not block.
	OnState func(State)

	// openConn, when set, opens every connection instead of dialling the
	// broker (TCP and TLS, or WebSockets): the package's tests connect the
	// session to an in-memory broker over net.Pipe, so that testing/synctest
	// can run it on a fake clock and check its timers (back-off, renewal)
	// exactly. Unexported, it is nil outside the tests, where nothing
	// changes.
	openConn mqtt.OpenConnectionFunc
}

// withDefaults validates c and fills its zero fields.
func (c Config) withDefaults() (Config, error) {
	id := c.Identity
	if id.HostName == "" || id.DeviceID == "" {
		return c, errors.New("device: identity needs HostName and DeviceId")
	}
	switch {
	case id.X509:
		if c.ClientCert == nil {
			return c, errors.New("device: x509 identity needs a client certificate")
		}
	case id.SharedAccessSignature != "":
		if _, err := iothub.ParseSAS(id.SharedAccessSignature); err != nil {
			return c, fmt.Errorf("device: SharedAccessSignature: %w", err)
		}
	case id.SharedAccessKey != "":
		if _, err := iothub.Sign(id.Resource(), id.SharedAccessKey, "", time.Unix(0, 0)); err != nil {
			return c, fmt.Errorf("device: SharedAccessKey: %w", err)
		}
	default:
		return c, errors.New("device: identity has no SharedAccessKey, SharedAccessSignature or x509=true")
	}
	switch c.Transport {
	case "":
		c.Transport = TransportMQTT
	case TransportMQTT, TransportMQTTWS:
	default:
		return c, fmt.Errorf("device: unknown transport %q (want %q or %q)", c.Transport, TransportMQTT, TransportMQTTWS)
	}
	setDefault(&c.SASTTL, DefaultSASTTL)
	setDefault(&c.KeepAlive, DefaultKeepAlive)
	setDefault(&c.BackoffMin, DefaultBackoffMin)
	setDefault(&c.BackoffMax, DefaultBackoffMax)
	setDefault(&c.DialTimeout, DefaultDialTimeout)
	setDefault(&c.DrainTimeout, DefaultDrainTimeout)
	if c.BackoffMax < c.BackoffMin {
		c.BackoffMax = c.BackoffMin
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, nil
}

func setDefault(d *time.Duration, v time.Duration) {
	if *d <= 0 {
		*d = v
	}
}
