package device

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/methodd/methodd/internal/logkey"
	"github.com/methodd/methodd/iothub"
)

// Provisioning limits (fleet reference §5.5: the Node and Python clients'
// defaults).
const (
	DefaultProvisionTimeout = 30 * time.Second // per request, and the connect
	dpsDefaultRetryAfter    = 2 * time.Second  // when the service gives none
	dpsMaxRetryAfter        = 60 * time.Second // a longer retry-after is capped
	dpsMaxRetries           = 5                // 429/5xx re-sends per Provision call
	dpsTokenTTL             = time.Hour
	dpsQuiesce              = 250 // ms granted to DISCONNECT
)

// ErrProvisionTimeout is wrapped by Provision's error when DPS does not
// answer the connect or a request within RequestTimeout.
var ErrProvisionTimeout = errors.New("dps: no answer in time")

// ProvisionConfig describes one registration with the Device Provisioning
// Service over MQTT. IDScope, RegistrationID and one of SymmetricKey and
// ClientCert are required; every other zero field takes its default.
type ProvisionConfig struct {
	Endpoint       string           // DPS host[:port]; default iothub.DPSGlobalEndpoint; default port 8883 (mqtt) / 443 (mqtt-ws, path /$iothub/websocket)
	IDScope        string           // the DPS instance's id scope
	RegistrationID string           // the device's registration id (the MQTT client id)
	SymmetricKey   string           // base64 device key (a group's already derived); empty with ClientCert
	ClientCert     *tls.Certificate // X.509 attestation (no password)
	RootCAs        *x509.CertPool   // nil: system roots
	Transport      string           // TransportMQTT (default) or TransportMQTTWS
	Payload        json.RawMessage  // optional custom allocation payload
	ProductInfo    string           // sent as &ClientVersion= in the username; "" none
	RequestTimeout time.Duration    // bounds the connect and each request's answer; default 30s
	Logger         *slog.Logger     // nil: discard
	Now            func() time.Time // nil: time.Now (token expiry)
}

// Assignment is the result of a successful registration.
type Assignment struct {
	AssignedHub, DeviceID, Substatus string
	State                            iothub.DPSRegistrationState // as DPS sent it
}

// ProvisionError is DPS refusing or failing a registration. Error() never
// contains a key or token.
type ProvisionError struct {
	Status     int           // MQTT response status (401, 404, 429, 500…); 200 for a registration whose status is failed/disabled
	ErrorCode  int           // DPS errorCode when given
	TrackingID string        // DPS trackingId when given
	Message    string        // DPS message (or registrationState.errorMessage)
	RetryAfter time.Duration // the service's retry-after, 0 if none
}

// Error describes the refusal: status, error code, message, tracking id.
func (e *ProvisionError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "dps: registration refused: status %d", e.Status)
	if e.ErrorCode != 0 {
		fmt.Fprintf(&b, ", errorCode %d", e.ErrorCode)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	if e.TrackingID != "" {
		fmt.Fprintf(&b, " (trackingId %s)", e.TrackingID)
	}
	return b.String()
}

// Temporary reports whether a later attempt may succeed: 429 and ≥500.
func (e *ProvisionError) Temporary() bool {
	return e.Status == http.StatusTooManyRequests || e.Status >= 500
}

// withDefaults validates c and fills in its defaults.
func (c ProvisionConfig) withDefaults() (ProvisionConfig, error) {
	switch {
	case c.IDScope == "":
		return c, errors.New("dps: IDScope is required")
	case c.RegistrationID == "":
		return c, errors.New("dps: RegistrationID is required")
	case (c.SymmetricKey == "") == (c.ClientCert == nil):
		return c, errors.New("dps: exactly one of SymmetricKey and ClientCert is required")
	}
	switch c.Transport {
	case "":
		c.Transport = TransportMQTT
	case TransportMQTT, TransportMQTTWS:
	default:
		return c, fmt.Errorf("dps: unknown transport %q (want %q or %q)", c.Transport, TransportMQTT, TransportMQTTWS)
	}
	if c.Endpoint == "" {
		c.Endpoint = iothub.DPSGlobalEndpoint
	}
	setDefault(&c.RequestTimeout, DefaultProvisionTimeout)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, nil
}

// brokerURL is tls://host:8883 or wss://host:443/$iothub/websocket unless
// Endpoint carries its own port.
func (c *ProvisionConfig) brokerURL() string {
	if c.Transport == TransportMQTTWS {
		return "wss://" + withPort(c.Endpoint, portWS) + websocketPath
	}
	return "tls://" + withPort(c.Endpoint, portMQTT)
}

// clientOptions are the paho options of the registration connection:
// clean session, MQTT 3.1.1, no reconnects, the DPS username and token.
func (c *ProvisionConfig) clientOptions(onMessage mqtt.MessageHandler, onLost mqtt.ConnectionLostHandler) (*mqtt.ClientOptions, error) {
	o := mqtt.NewClientOptions()
	o.AddBroker(c.brokerURL())
	o.SetClientID(c.RegistrationID)
	o.SetUsername(iothub.DPSUsername(c.IDScope, c.RegistrationID, c.ProductInfo))
	if c.SymmetricKey != "" {
		tok, err := iothub.SignDPS(c.IDScope, c.RegistrationID, c.SymmetricKey, c.Now().Add(dpsTokenTTL))
		if err != nil {
			return nil, fmt.Errorf("dps: %w", err) // names no key
		}
		o.SetPassword(tok)
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: c.RootCAs, ServerName: serverName(c.Endpoint)}
	if c.ClientCert != nil {
		tc.Certificates = []tls.Certificate{*c.ClientCert}
	}
	o.SetTLSConfig(tc)
	o.SetProtocolVersion(4)
	o.SetCleanSession(true)
	o.SetAutoReconnect(false)
	o.SetConnectRetry(false)
	o.SetResumeSubs(false)
	o.SetKeepAlive(DefaultKeepAlive)
	o.SetConnectTimeout(c.RequestTimeout)
	o.SetWriteTimeout(c.RequestTimeout)
	o.SetOrderMatters(true) // onMessage never blocks
	o.SetDefaultPublishHandler(onMessage)
	o.SetConnectionLostHandler(onLost)
	o.SetWebsocketOptions(&mqtt.WebsocketOptions{Proxy: http.ProxyFromEnvironment})
	return o, nil
}

// Provision registers the device with DPS over one MQTT connection and
// follows the service's state machine (§5.5): register, wait retry-after
// (default 2 s, at most 60 s), poll until the registration is assigned.
// 429 and 5xx answers are retried after their retry-after, at most 5 times
// per call. It returns the assignment, a *ProvisionError when DPS refuses
// or fails the registration (also for a registration "failed" or
// "disabled"), an error wrapping ErrProvisionTimeout when DPS does not
// answer within RequestTimeout, ctx's error when ctx ends, or a
// connection or configuration error. Errors hold no key or token.
func Provision(ctx context.Context, c ProvisionConfig) (Assignment, error) {
	c, err := c.withDefaults()
	if err != nil {
		return Assignment{}, err
	}
	p := &provisioner{
		cfg:  c,
		log:  c.Logger.With(logkey.Component, "dps", logkey.RegistrationID, c.RegistrationID),
		msgs: make(chan mqtt.Message, 16),
		lost: make(chan error, 1),
		done: make(chan struct{}),
	}
	defer close(p.done)
	if err := p.connect(ctx); err != nil {
		return Assignment{}, err
	}
	defer p.client.Disconnect(dpsQuiesce)
	if err := p.wait(ctx, p.client.Subscribe(iothub.DPSResponseSubscription, 1, nil), "subscribe"); err != nil {
		return Assignment{}, err
	}
	a, err := p.run(ctx)
	if ctx.Err() == nil && !errors.Is(err, ErrProvisionTimeout) {
		_ = p.wait(ctx, p.client.Unsubscribe(iothub.DPSResponseSubscription), "unsubscribe")
	}
	return a, err
}

// provisioner is one Provision call's connection and state.
type provisioner struct {
	cfg    ProvisionConfig
	log    *slog.Logger
	client mqtt.Client
	msgs   chan mqtt.Message // responses, handed off by paho
	lost   chan error        // the connection dropped
	done   chan struct{}     // closed when Provision returns
}

// connect opens the connection; on failure nothing is left open.
func (p *provisioner) connect(ctx context.Context) error {
	opts, err := p.cfg.clientOptions(p.onMessage, func(_ mqtt.Client, err error) {
		select {
		case p.lost <- err:
		default:
		}
	})
	if err != nil {
		return err
	}
	p.client = mqtt.NewClient(opts)
	if err := p.wait(ctx, p.client.Connect(), "connect"); err != nil {
		p.client.Disconnect(0)
		return err
	}
	p.log.Debug("dps connected", logkey.Dial, p.cfg.brokerURL())
	return nil
}

// onMessage hands a response to the state machine; after Provision
// returned, or when the buffer is full (the machine reads one response per
// request), it is dropped.
func (p *provisioner) onMessage(_ mqtt.Client, m mqtt.Message) {
	select {
	case p.msgs <- m:
	case <-p.done:
	default:
	}
}

// wait waits for tok, at most RequestTimeout, and for ctx.
func (p *provisioner) wait(ctx context.Context, tok mqtt.Token, what string) error {
	t := time.NewTimer(p.cfg.RequestTimeout)
	defer t.Stop()
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			if ctx.Err() == nil && isTimeout(err) { // paho's own bound, the same RequestTimeout
				//nolint:errorlint // err may be context.DeadlineExceeded: a DPS timeout is ErrProvisionTimeout and must not look like the caller's own deadline.
				return fmt.Errorf("dps: %s %s: %w (%s): %v", what, p.cfg.Endpoint, ErrProvisionTimeout, p.cfg.RequestTimeout, err)
			}
			return fmt.Errorf("dps: %s %s: %w", what, p.cfg.Endpoint, err)
		}
		return nil
	case <-t.C:
		return fmt.Errorf("dps: %s %s: %w (%s)", what, p.cfg.Endpoint, ErrProvisionTimeout, p.cfg.RequestTimeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// isTimeout reports whether err is a deadline passing: a net.Error's
// Timeout, or context.DeadlineExceeded (paho's connect timeout).
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}
