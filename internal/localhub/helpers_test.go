package localhub_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/methodd/methodd/internal/localhub"
	"github.com/methodd/methodd/internal/testkit"
	"github.com/methodd/methodd/iothub"
)

// waitFor is how long tests wait on a condition before failing.
const waitFor = 10 * time.Second

// testHub is a started hub with what a test needs to talk to it.
type testHub struct {
	*localhub.Hub
	info   localhub.Info
	opts   localhub.Options
	pool   *x509.CertPool
	http   *http.Client
	logs   *testkit.SyncBuffer
	events *eventLog
}

// startHub starts a hub on free loopback ports in a temp dir (unless opts
// say otherwise) with device "dev1" registered; it is closed at cleanup, and
// its logs are printed when the test fails. Its events are recorded in
// th.events unless opts.OnEvent is set.
func startHub(t testing.TB, opts localhub.Options) *testHub {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	if opts.MQTTAddr == "" {
		opts.MQTTAddr = "127.0.0.1:0"
	}
	if opts.HTTPSAddr == "" {
		opts.HTTPSAddr = "127.0.0.1:0"
	}
	if opts.Devices == nil {
		opts.Devices = []string{"dev1"}
	}
	logs := &testkit.SyncBuffer{}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	events := newEventLog()
	if opts.OnEvent == nil {
		opts.OnEvent = events.record
	}
	h, err := localhub.Start(context.Background(), opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if t.Failed() {
			t.Logf("hub logs:\n%s", logs.String())
		}
	})
	th := &testHub{Hub: h, info: h.Info(), opts: opts, logs: logs, events: events}
	th.pool = x509.NewCertPool()
	pem, err := os.ReadFile(th.info.CAFile)
	if err != nil || !th.pool.AppendCertsFromPEM(pem) {
		t.Fatalf("read CA %s: %v", th.info.CAFile, err)
	}
	th.http = &http.Client{
		Transport: &http.Transport{
			TLSClientConfig:     &tls.Config{RootCAs: th.pool},
			MaxIdleConnsPerHost: 64,
		},
		// The API never redirects: a redirect is an answer to check, not
		// to follow.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	t.Cleanup(th.http.CloseIdleConnections)
	return th
}

// deviceCreds is how a device logs in (§3.2).
type deviceCreds struct {
	dial, clientID, username, password string
}

// creds derives the CONNECT fields of identity id from hub.json, with a
// token valid for ttl.
func (th *testHub) creds(t testing.TB, id string, ttl time.Duration) deviceCreds {
	t.Helper()
	cs, err := iothub.ParseDeviceConnectionString(th.Info().Devices[id])
	if err != nil {
		t.Fatalf("device %s connection string: %v", id, err)
	}
	tok, err := iothub.Sign(iothub.IdentityResource(cs.HostName, cs.DeviceID, cs.ModuleID), cs.SharedAccessKey, "", time.Now().Add(ttl))
	if err != nil {
		t.Fatal(err)
	}
	return deviceCreds{
		dial:     cs.DialHost(),
		clientID: cs.ClientID(),
		username: iothub.Username(cs.HostName, cs.ClientID(), "methodd-test/1.0"),
		password: tok,
	}
}

// device is a paho client connected like the SDKs do: MQTT 3.1.1 over TLS,
// clean session 0, no automatic reconnect (tests drive reconnects).
type device struct {
	c       paho.Client
	lost    chan error // closed-connection notifications
	present bool       // the CONNACK's session-present flag
}

func (th *testHub) pahoOptions(c deviceCreds) *paho.ClientOptions {
	return paho.NewClientOptions().
		AddBroker("ssl://" + c.dial).
		SetTLSConfig(&tls.Config{RootCAs: th.pool}).
		SetClientID(c.clientID).
		SetUsername(c.username).
		SetPassword(c.password).
		SetProtocolVersion(4).
		SetCleanSession(false).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetOrderMatters(false).
		SetKeepAlive(60 * time.Second).
		SetConnectTimeout(waitFor)
}

// connect connects with c over TLS; it returns the CONNECT error
// (refusals included).
func (th *testHub) connect(t testing.TB, c deviceCreds, edit func(*paho.ClientOptions)) (*device, error) {
	t.Helper()
	return th.connectWith(t, c, edit)
}

// connectURL connects with c to a broker URL (e.g. wss://...).
func (th *testHub) connectURL(t testing.TB, url string, c deviceCreds) (*device, error) {
	t.Helper()
	return th.connectWith(t, c, func(o *paho.ClientOptions) {
		o.Servers = nil
		o.AddBroker(url)
	})
}

func (th *testHub) connectWith(t testing.TB, c deviceCreds, edit func(*paho.ClientOptions)) (*device, error) {
	t.Helper()
	d := &device{lost: make(chan error, 1)}
	opts := th.pahoOptions(c).SetConnectionLostHandler(func(_ paho.Client, err error) {
		select {
		case d.lost <- err:
		default:
		}
	})
	if edit != nil {
		edit(opts)
	}
	d.c = paho.NewClient(opts)
	tok := d.c.Connect()
	if !tok.WaitTimeout(waitFor) {
		t.Fatalf("connect %s: timed out", c.clientID)
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	d.present = tok.(*paho.ConnectToken).SessionPresent()
	t.Cleanup(func() { d.c.Disconnect(0) })
	return d, nil
}

// mustConnect connects identity id with a one-hour token.
func (th *testHub) mustConnect(t testing.TB, id string) *device {
	t.Helper()
	d, err := th.connect(t, th.creds(t, id, time.Hour), nil)
	if err != nil {
		t.Fatalf("connect %s: %v", id, err)
	}
	return d
}

// request is a method request as a device saw it.
type request struct {
	topic, method, rid string
	payload            []byte
}

// handler answers one request with a status and a body; nil body = no reply.
type handler func(request) (status int, body []byte, reply bool)

// echo replies 200 with the request payload, byte for byte.
func echo(r request) (int, []byte, bool) { return 200, r.payload, true }

// subscribe subscribes to methods at qos and answers every request with h;
// every request is also sent on the returned channel.
func (d *device) subscribe(t testing.TB, qos byte, h handler) <-chan request {
	t.Helper()
	seen := make(chan request, 64)
	d.setHandler(t, h, seen)
	tok := d.c.Subscribe(iothub.MethodsSubscription, qos, nil)
	if !tok.WaitTimeout(waitFor) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	return seen
}

// setHandler routes method requests (also those of an inherited session,
// which arrive without a new SUBSCRIBE) to h.
func (d *device) setHandler(t testing.TB, h handler, seen chan<- request) {
	d.c.AddRoute(iothub.MethodsSubscription, func(c paho.Client, m paho.Message) {
		method, rid, err := iothub.ParseMethodRequestTopic(m.Topic())
		if err != nil {
			t.Errorf("device got topic %q: %v", m.Topic(), err)
			return
		}
		r := request{topic: m.Topic(), method: method, rid: rid, payload: append([]byte(nil), m.Payload()...)}
		select {
		case seen <- r:
		default:
		}
		if status, body, ok := h(r); ok {
			c.Publish(iothub.MethodResponseTopic(status, rid), 0, false, body)
		}
	})
}

// waitLost waits for the hub to close d's connection.
func (d *device) waitLost(t testing.TB) error {
	t.Helper()
	select {
	case err := <-d.lost:
		return err
	case <-time.After(waitFor):
		t.Fatal("connection was not closed by the hub")
		return nil
	}
}

// serviceToken signs a service SAS for the hub's HostName (with its port,
// as a client given the service connection string does).
func (th *testHub) serviceToken(t testing.TB) string {
	t.Helper()
	cs, err := iothub.ParseServiceConnectionString(th.info.ServiceConnectionString)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := iothub.Sign(cs.HostName, cs.SharedAccessKey, cs.SharedAccessKeyName, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// response is an HTTP answer of the REST API.
type response struct {
	status int
	header http.Header
	body   []byte
}

// post sends body to path (with api-version) with the Authorization token.
func (th *testHub) post(t testing.TB, path, auth string, body []byte) response {
	t.Helper()
	return th.request(t, http.MethodPost, path, auth, body)
}

// request sends body to path (sent as written, escapes and all) with the
// HTTP method and the Authorization token.
func (th *testHub) request(t testing.TB, method, path, auth string, body []byte) response {
	t.Helper()
	cs, _ := iothub.ParseServiceConnectionString(th.info.ServiceConnectionString)
	req, err := http.NewRequest(method, "https://"+cs.HostName+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := th.http.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// invoke calls a method over REST like the Node service SDK (§9), which
// sends all four fields; a zero response timeout becomes 10 s.
func (th *testHub) invoke(t testing.TB, device, module string, req iothub.MethodRequest) response {
	t.Helper()
	if req.ResponseTimeoutInSeconds == 0 {
		req.ResponseTimeoutInSeconds = 10
	}
	return th.post(t, iothub.MethodsPath(device, module)+"?"+iothub.MethodsQuery, th.serviceToken(t), req.Encode())
}

// wantError checks an error response: status, code, header and body shape.
func wantError(t testing.TB, r response, code int) {
	t.Helper()
	if r.status != code/1000 {
		t.Fatalf("status %d, want %d; body %s", r.status, code/1000, r.body)
	}
	e := iothub.ParseError(r.status, r.header.Get(iothub.ErrorCodeHeader), r.body)
	if e.Code != code {
		t.Fatalf("errorCode %d, want %d; body %s", e.Code, code, r.body)
	}
	if got, want := r.header.Get(iothub.ErrorCodeHeader), iothub.ErrorName(code); got != want {
		t.Errorf("%s header %q, want %q", iothub.ErrorCodeHeader, got, want)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q, want JSON", ct)
	}
	if id := r.header.Get("x-ms-request-id"); !isUUIDv4(id) {
		t.Errorf("x-ms-request-id %q, want a version-4 UUID", id)
	}
	if !strings.Contains(e.TrackingID, "-TimeStamp:") || len(e.TrackingID) < 32 {
		t.Errorf("trackingId %q, want <hex>-TimeStamp:...", e.TrackingID)
	}
}

// uuidV4 is a canonical RFC 4122 version-4 UUID.
var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// isUUIDv4 reports whether s is a canonical version-4 UUID.
func isUUIDv4(s string) bool { return uuidV4.MatchString(s) }
