package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/methodd/methodd/internal/localhub"
	"github.com/methodd/methodd/internal/testkit"
	"github.com/methodd/methodd/iothub"
)

// testHub is a local hub on loopback ports with its state in a temp dir.
type testHub struct {
	hub  *localhub.Hub
	dir  string
	info localhub.Info
}

// startTestHub starts a local hub with the given identities registered.
func startTestHub(t testing.TB, devices ...string) *testHub {
	t.Helper()
	dir := t.TempDir()
	h, err := localhub.Start(context.Background(), localhub.Options{
		Dir: dir, MQTTAddr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0", Devices: devices,
	})
	if err != nil {
		t.Fatalf("start local hub: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	return &testHub{hub: h, dir: dir, info: h.Info()}
}

// env is a fake environment with only the local hub's directory set, so
// --local works without --hub-dir and nothing of the real one leaks in.
func (h *testHub) env(extra ...string) func(string) string {
	m := map[string]string{"XDG_STATE_HOME": "/nonexistent-state"}
	for i := 0; i+1 < len(extra); i += 2 {
		m[extra[i]] = extra[i+1]
	}
	return func(k string) string { return m[k] }
}

// rootsFor is a pool trusting the hub's CA.
func (h *testHub) roots(t testing.TB) *x509.CertPool { return testkit.CertPool(t, h.info.CAFile) }

// directCall POSTs a method body to the hub with plain net/http (not through
// package invoke) and returns the status and the body byte for byte.
func (h *testHub) directCall(t testing.TB, path string, body []byte) (int, []byte) {
	t.Helper()
	cs, err := iothub.ParseServiceConnectionString(h.info.ServiceConnectionString)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := iothub.Sign(cs.HostName, cs.SharedAccessKey, cs.SharedAccessKeyName, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, "https://"+h.info.HTTPSAddr+path+"?"+iothub.MethodsQuery, bytes.NewReader(body))
	req.Header.Set("Authorization", tok)
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	cl := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: h.roots(t), ServerName: "localhost"}}}
	defer cl.CloseIdleConnections()
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// echoDevice is an MQTT device on the local hub whose behaviour is driven by
// the method name: "echo" replies 200 with the request payload bytes as
// received; "fail500" replies 500 {"error":"boom"}; "teapot" replies 418
// with no payload; "sleep" never replies (the hub answers 504101). Every
// request's payload is recorded.
type echoDevice struct {
	client mqtt.Client
	status int // when not 0, every method is answered with this status and {"error":"forced"}

	mu       sync.Mutex
	received [][]byte
}

// startEchoDevice connects identity id ("dev" or "dev/mod") and subscribes
// to methods; it returns once the subscription is acknowledged.
func startEchoDevice(t testing.TB, h *testHub, id string) *echoDevice {
	t.Helper()
	return startDevice(t, h, id, 0)
}

// startDevice is startEchoDevice with a forced reply status (0: none).
func startDevice(t testing.TB, h *testHub, id string, status int) *echoDevice {
	t.Helper()
	d, err := connectDevice(h, id, status)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.client.Disconnect(0) })
	return d
}

// connectDevice connects and subscribes identity id; the caller disconnects.
// It may be called from any goroutine.
func connectDevice(h *testHub, id string, status int) (*echoDevice, error) {
	d := &echoDevice{status: status}
	cs, err := iothub.ParseDeviceConnectionString(h.info.Devices[id])
	if err != nil {
		return nil, fmt.Errorf("device %s: %w", id, err)
	}
	tok, err := iothub.Sign(cs.Resource(), cs.SharedAccessKey, "", time.Now().Add(time.Hour))
	if err != nil {
		return nil, err
	}
	pem, err := os.ReadFile(h.info.CAFile)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	opts := mqtt.NewClientOptions().
		AddBroker("tls://" + h.info.MQTTAddr).
		SetClientID(cs.ClientID()).
		SetUsername(iothub.Username(cs.HostName, cs.ClientID(), "")).
		SetPassword(tok).
		SetCleanSession(false).
		SetProtocolVersion(4).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetTLSConfig(&tls.Config{RootCAs: roots, ServerName: "localhost"})
	d.client = mqtt.NewClient(opts)
	if tk := d.client.Connect(); !tk.WaitTimeout(10*time.Second) || tk.Error() != nil {
		return nil, fmt.Errorf("device %s connect: %w", id, tk.Error())
	}
	if tk := d.client.Subscribe(iothub.MethodsSubscription, 0, d.handle); !tk.WaitTimeout(10*time.Second) || tk.Error() != nil {
		d.client.Disconnect(0)
		return nil, fmt.Errorf("device %s subscribe: %w", id, tk.Error())
	}
	return d, nil
}

// startDevices connects many identities concurrently (8 at a time), all
// echoing except those in forced, which answer with the given status.
func startDevices(t testing.TB, h *testHub, ids []string, forced map[string]int) {
	t.Helper()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		sem  = make(chan struct{}, 8)
	)
	for _, id := range ids {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			d, err := connectDevice(h, id, forced[id])
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			t.Cleanup(func() { d.client.Disconnect(0) })
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d devices failed to start, first: %v", len(errs), errs[0])
	}
}

func (d *echoDevice) handle(c mqtt.Client, m mqtt.Message) {
	method, rid, err := iothub.ParseMethodRequestTopic(m.Topic())
	if err != nil {
		return
	}
	p := append([]byte(nil), m.Payload()...)
	d.mu.Lock()
	d.received = append(d.received, p)
	d.mu.Unlock()
	status, reply := 200, p
	switch {
	case d.status != 0:
		status, reply = d.status, []byte(`{"error":"forced"}`)
	case method == "fail500":
		status, reply = 500, []byte(`{"error":"boom"}`)
	case method == "teapot":
		status, reply = 418, nil
	case method == "sleep":
		return
	case strings.HasPrefix(method, "echo"):
	default:
		status, reply = 501, []byte(`{"error":"unknown method"}`)
	}
	c.Publish(iothub.MethodResponseTopic(status, rid), 0, false, reply)
}

// lastReceived is the payload of the latest request the device got.
func (d *echoDevice) lastReceived(t testing.TB) []byte {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.received) == 0 {
		t.Fatal("device received no request")
	}
	return d.received[len(d.received)-1]
}

// invokeResult is what one in-process run of the command produced.
type invokeResult struct {
	code           int
	stdout, stderr string
}

// runInvoke runs `methodd invoke args...` in-process.
func runInvoke(t testing.TB, getenv func(string) string, stdin string, args ...string) invokeResult {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(context.Background(), append([]string{"invoke"}, args...),
		Env{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb, Getenv: getenv})
	return invokeResult{code, out.String(), errb.String()}
}
