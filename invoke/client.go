package invoke

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/methodd/methodd/iothub"
)

// RequestSlack is added to connect + response timeout to form the deadline
// of one HTTP request: the hub answers 504101 at the response timeout, so the
// client must wait longer than both together (§5.2; C# uses the same 15 s).
const RequestSlack = 15 * time.Second

// DefaultTokenTTL is the lifetime of the service SAS the client mints; a new
// one is signed once 80 % of it has passed.
const DefaultTokenTTL = time.Hour

// maxBodyBytes bounds what is read of a response: a result carries at most a
// 128 KB payload, an error body far less.
const maxBodyBytes = 4 << 20

// ClientOptions tune a Client. The zero value is usable.
type ClientOptions struct {
	// RootCAs verifies the hub's certificate; nil means the system roots.
	RootCAs *x509.CertPool
	// Addr, when set, is the host:port dialled instead of HostName (for
	// example the local hub's httpsAddr). TLS still verifies the host name
	// of HostName and the SAS audience stays HostName.
	Addr string
	// Now is the clock for token expiry and latencies; nil means time.Now.
	Now func() time.Time
	// UserAgent is sent as User-Agent; empty means "methodd".
	UserAgent string
	// MaxConns bounds the connections to the hub, in use or idle; calls
	// beyond it wait for a free connection. Set it to the fan-out
	// parallelism. Zero means 16.
	MaxConns int
	// TokenTTL is the lifetime of minted tokens; zero means DefaultTokenTTL.
	TokenTTL time.Duration
	// Retry bounds the retries of throttled (429) and unavailable (503)
	// answers; zero fields take DefaultRetry's.
	Retry RetryPolicy
	// HTTPClient, when set, is used as is: RootCAs, Addr and MaxConns are
	// then ignored. Meant for tests.
	HTTPClient *http.Client
}

// Client invokes direct methods through one hub's service REST API. It is
// safe for concurrent use; its connections are kept alive between calls.
type Client struct {
	base    string // "https://" + HostName
	tokens  *tokenSource
	http    *http.Client
	now     func() time.Time
	agent   string
	retry   RetryPolicy
	ownHTTP bool
}

// Result is a method's answer as the hub returned it.
type Result struct {
	// Status is the status the device replied with.
	Status int
	// Payload is the device's payload, the bytes of the hub's body verbatim
	// ("null" when the device sent none).
	Payload json.RawMessage
	// Raw is the hub's HTTP body exactly as received.
	Raw []byte
}

// ErrMalformedResult is wrapped when the hub answers 200 with a body that is
// not a method result ({"status":N,"payload":...}); Result.Raw still holds it.
var ErrMalformedResult = errors.New("hub answered with a malformed method result")

// NewClient returns a client for the hub named by a service connection
// string (HostName, SharedAccessKeyName, SharedAccessKey). HostName may carry
// ":port". It fails if the string lacks a policy name or its key is not
// base64; the error never contains the key.
func NewClient(cs iothub.ConnectionString, opts ClientOptions) (*Client, error) {
	if cs.HostName == "" || cs.SharedAccessKeyName == "" || cs.SharedAccessKey == "" {
		return nil, fmt.Errorf("%w: a service connection string needs HostName, SharedAccessKeyName and SharedAccessKey", iothub.ErrConnectionString)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.TokenTTL <= 0 {
		opts.TokenTTL = DefaultTokenTTL
	}
	c := &Client{
		base:  "https://" + cs.HostName,
		now:   opts.Now,
		agent: opts.UserAgent,
		retry: opts.Retry.withDefaults(),
		tokens: &tokenSource{resource: cs.HostName, key: cs.SharedAccessKey, keyName: cs.SharedAccessKeyName,
			ttl: opts.TokenTTL, now: opts.Now},
		http: opts.HTTPClient,
	}
	if c.agent == "" {
		c.agent = "methodd"
	}
	if _, err := c.tokens.Token(); err != nil {
		return nil, fmt.Errorf("%w: SharedAccessKey is not valid base64", iothub.ErrConnectionString)
	}
	if c.http == nil {
		c.http = &http.Client{Transport: newTransport(hostOnly(cs.HostName), opts)}
		c.ownHTTP = true
	}
	return c, nil
}

func newTransport(serverName string, opts ClientOptions) *http.Transport {
	conns := opts.MaxConns
	if conns <= 0 {
		conns = 16
	}
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	dial := d.DialContext
	if opts.Addr != "" {
		addr := opts.Addr
		dial = func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		}
	}
	return &http.Transport{
		DialContext:         dial,
		TLSClientConfig:     &tls.Config{RootCAs: opts.RootCAs, ServerName: serverName, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout: 15 * time.Second,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		IdleConnTimeout:     90 * time.Second,
	}
}

// hostOnly strips an optional ":port" from a host name.
func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return hostport
}

// Close releases the client's idle connections.
func (c *Client) Close() {
	if c.ownHTTP {
		c.http.CloseIdleConnections()
	}
}

// Invoke calls req.MethodName on t and returns the hub's answer. A device
// reply of any status is a Result with a nil error. A non-200 HTTP answer is
// returned as a *iothub.Error (find it with errors.As); throttled (429) and
// unavailable (503) answers are retried per the client's RetryPolicy first,
// and nothing else is retried (methods are not idempotent). Transport
// failures are wrapped. The request's deadline is connect + response timeout
// + RequestSlack, within ctx.
func (c *Client) Invoke(ctx context.Context, t Target, req iothub.MethodRequest) (Result, error) {
	r, _, err := c.invoke(ctx, t, req)
	return r, err
}

// invoke is Invoke that also reports how many attempts were made.
func (c *Client) invoke(ctx context.Context, t Target, req iothub.MethodRequest) (Result, int, error) {
	body := req.Encode()
	url := c.base + iothub.MethodsPath(t.Device, t.Module) + "?" + iothub.MethodsQuery
	limit := time.Duration(req.ConnectTimeoutInSeconds+req.ResponseTimeoutInSeconds)*time.Second + RequestSlack
	var res Result
	attempts, err := c.withRetries(ctx, func() (retryAfter time.Duration, err error) {
		res, retryAfter, err = c.post(ctx, url, body, limit)
		return retryAfter, err
	})
	if err != nil {
		return res, attempts, fmt.Errorf("invoke %s %s: %w", t, req.MethodName, err)
	}
	return res, attempts, nil
}

// withRetries makes attempts of once until one succeeds, one fails with an
// answer that may not be repeated (see retryable), or the policy's attempts
// are spent, backing off between them; it returns the attempts made and
// the last error. Every request of the client goes through it, so every one
// follows the same rule: only 429 and 503 answers are repeated.
func (c *Client) withRetries(ctx context.Context, once func() (retryAfter time.Duration, err error)) (int, error) {
	for attempt := 1; ; attempt++ {
		retryAfter, err := once()
		if err == nil {
			return attempt, nil
		}
		if !retryable(err) || attempt >= c.retry.MaxAttempts {
			return attempt, err
		}
		if werr := wait(ctx, c.retry.delay(attempt, retryAfter)); werr != nil {
			//nolint:errorlint // the result is the cancellation (werr); err, the last attempt's failure, is context only and must not classify the outcome.
			return attempt, fmt.Errorf("%w (while backing off after: %v)", werr, err)
		}
	}
}

// post makes one method-invocation request. retryAfter is the Retry-After
// of a 429/503.
func (c *Client) post(ctx context.Context, url string, body []byte, limit time.Duration) (Result, time.Duration, error) {
	raw, retryAfter, err := c.send(ctx, outgoing{method: http.MethodPost, url: url, body: body, limit: limit})
	if err != nil {
		return Result{Raw: raw}, retryAfter, err
	}
	return decodeResult(raw)
}

// outgoing is one HTTP request to the hub.
type outgoing struct {
	method, url string
	body        []byte            // nil: no body and no Content-Type
	ifMatch     string            // If-Match header value; "" sends none
	header      map[string]string // further request headers (paging)
	maxBody     int               // bound of the answer's body; 0: maxBodyBytes
	limit       time.Duration
}

// send makes one HTTP request, signed with the service SAS, within
// o.limit, and returns the body of a 200 answer. Any other status is a
// *iothub.Error, returned with the body and the answer's Retry-After.
// Transport failures are returned as they are.
func (c *Client) send(ctx context.Context, o outgoing) ([]byte, time.Duration, error) {
	raw, _, retryAfter, err := c.exchange(ctx, o)
	return raw, retryAfter, err
}

// exchange is send that also returns the answer's headers.
func (c *Client) exchange(ctx context.Context, o outgoing) ([]byte, http.Header, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, o.limit)
	defer cancel()
	token, err := c.tokens.Token()
	if err != nil {
		return nil, nil, 0, errors.New("cannot sign a token: SharedAccessKey is not valid base64")
	}
	var body io.Reader
	if o.body != nil {
		body = bytes.NewReader(o.body)
	}
	hreq, err := http.NewRequestWithContext(ctx, o.method, o.url, body)
	if err != nil {
		return nil, nil, 0, err
	}
	h := hreq.Header
	h.Set("Authorization", token)
	if o.body != nil {
		h.Set("Content-Type", "application/json; charset=utf-8")
	}
	if o.ifMatch != "" {
		h.Set("If-Match", o.ifMatch)
	}
	h.Set("Accept", "application/json")
	h.Set("Request-Id", iothub.NewRequestID())
	h.Set("User-Agent", c.agent)
	for k, v := range o.header {
		h.Set(k, v)
	}
	resp, err := c.http.Do(hreq)
	if err != nil {
		return nil, nil, 0, err
	}
	defer resp.Body.Close()
	limit := cmp.Or(o.maxBody, maxBodyBytes)
	raw, err := io.ReadAll(io.LimitReader(resp.Body, int64(limit)+1))
	if err != nil {
		return nil, nil, 0, fmt.Errorf("read response: %w", err)
	}
	if len(raw) > limit {
		return nil, nil, 0, fmt.Errorf("response body larger than %d bytes", limit)
	}
	if resp.StatusCode != http.StatusOK {
		return raw, resp.Header, retryAfterOf(resp), iothub.ParseError(resp.StatusCode, resp.Header.Get(iothub.ErrorCodeHeader), raw)
	}
	return raw, resp.Header, 0, nil
}

// decodeResult parses a 200 body, keeping the payload bytes verbatim.
func decodeResult(raw []byte) (Result, time.Duration, error) {
	var m struct {
		Status  *int            `json:"status"`
		Payload json.RawMessage `json:"payload"`
	}
	if err := json.Unmarshal(raw, &m); err != nil || m.Status == nil {
		return Result{Raw: raw}, 0, ErrMalformedResult
	}
	p := m.Payload
	if len(p) == 0 {
		p = json.RawMessage("null")
	}
	return Result{Status: *m.Status, Payload: p, Raw: raw}, 0, nil
}
