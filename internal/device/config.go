package device

import (
	"context"
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
	DefaultBackoffFloor = time.Second
	DefaultBackoffMax   = 30 * time.Second
	DefaultDrainTimeout = 10 * time.Second
	DefaultMaxInFlight  = 1024
	DefaultDialTimeout  = 30 * time.Second
)

// renewFraction is the part of a token's lifetime after which the session
// reconnects with a fresh one (the C SDK's 80 %, §2.3).
const renewFraction = 0.8

// Config describes one device or module session. Identity is required
// unless Reidentify is set; every other zero field takes its default.
type Config struct {
	// Identity is the parsed device or module connection string. It holds a
	// secret and is never logged. With Reidentify set it may be empty (no
	// DeviceId): Reidentify then provides the first one.
	Identity iothub.ConnectionString
	// Reidentify, when set, returns a new identity (DPS provisioning does):
	// it is called before a connection attempt when Identity has no
	// DeviceId yet, and after the hub refused the identity at CONNECT
	// (CONNACK 4, bad user name or password, or 5, not authorised). Its
	// result serves every later connection. It is called from the
	// session's goroutine with a context bounded by DialTimeout; an error
	// counts as a failed connection attempt (reported in a Disconnected
	// state, retried after the same back-off) and must not hold secrets.
	Reidentify func(ctx context.Context) (iothub.ConnectionString, error)
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
	if c.Reidentify == nil || c.Identity.DeviceID != "" {
		if err := c.checkIdentity(c.Identity); err != nil {
			return c, err
		}
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
	setDefault(&c.BackoffMin, DefaultBackoffFloor)
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

// checkIdentity validates an identity the session is to connect as (the
// configured one, or one Reidentify returned): host, device id and a way to
// authenticate that works with c.
func (c *Config) checkIdentity(id iothub.ConnectionString) error {
	if id.HostName == "" || id.DeviceID == "" {
		return errors.New("device: identity needs HostName and DeviceId")
	}
	switch {
	case id.X509:
		if c.ClientCert == nil {
			return errors.New("device: x509 identity needs a client certificate")
		}
	case id.SharedAccessSignature != "":
		if _, err := iothub.ParseSAS(id.SharedAccessSignature); err != nil {
			return fmt.Errorf("device: SharedAccessSignature: %w", err)
		}
	case id.SharedAccessKey != "":
		if _, err := iothub.Sign(id.Resource(), id.SharedAccessKey, "", time.Unix(0, 0)); err != nil {
			return fmt.Errorf("device: SharedAccessKey: %w", err)
		}
	default:
		return errors.New("device: identity has no SharedAccessKey, SharedAccessSignature or x509=true")
	}
	return nil
}

func setDefault(d *time.Duration, v time.Duration) {
	if *d <= 0 {
		*d = v
	}
}
