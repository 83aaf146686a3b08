package device_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/methodd/methodd/engine"
	"github.com/methodd/methodd/internal/device"
	"github.com/methodd/methodd/internal/localhub"
	"github.com/methodd/methodd/internal/serve"
	"github.com/methodd/methodd/iothub"
)

// e2eHub is a local hub on 127.0.0.1:0 for one test.
type e2eHub struct {
	*localhub.Hub
	opts localhub.Options
	info localhub.Info
}

func startE2EHub(t testing.TB, ws bool, devices ...string) *e2eHub {
	t.Helper()
	opts := localhub.Options{Dir: t.TempDir(), MQTTAddr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0", Devices: devices}
	if ws {
		opts.WSAddr = "127.0.0.1:0"
	}
	h, err := localhub.Start(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return &e2eHub{Hub: h, opts: opts, info: h.Info()}
}

// roots trusts the hub's CA.
func (h *e2eHub) roots(t testing.TB) *x509.CertPool {
	t.Helper()
	pem, err := os.ReadFile(h.info.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("no CA in", h.info.CAFile)
	}
	return pool
}

// config is a session config for identity id ("dev" or "dev/mod").
func (h *e2eHub) config(t testing.TB, id string) device.Config {
	t.Helper()
	cs, err := iothub.ParseDeviceConnectionString(h.info.Devices[id])
	if err != nil {
		t.Fatalf("identity %s: %v", id, err)
	}
	return device.Config{Identity: cs, RootCAs: h.roots(t), BackoffMin: 50 * time.Millisecond, BackoffMax: time.Second}
}

// states collects a session's state changes.
type states struct {
	mu        sync.Mutex
	all       []device.State
	connected chan device.State
}

func newStates() *states { return &states{connected: make(chan device.State, 1024)} }

func (s *states) record(st device.State) {
	s.mu.Lock()
	s.all = append(s.all, st)
	s.mu.Unlock()
	if st.Kind == device.Connected {
		s.connected <- st
	}
}

func (s *states) count(pred func(device.State) bool) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, st := range s.all {
		if pred(st) {
			n++
		}
	}
	return n
}

// waitConnected waits for the next Connected state.
func (s *states) waitConnected(t testing.TB, within time.Duration) device.State {
	t.Helper()
	select {
	case st := <-s.connected:
		return st
	case <-time.After(within):
		t.Fatalf("not connected within %v", within)
		return device.State{}
	}
}

// runSession runs a session until the test ends; it returns its states.
func runSession(t testing.TB, cfg device.Config, h device.Handler) *states {
	t.Helper()
	st := newStates()
	cfg.OnState = st.record
	s, err := device.New(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Run did not return within 30s")
		}
	})
	return st
}

// newEngineHandler serves a session from yaml as cs, as methodd run does.
func newEngineHandler(t testing.TB, yaml string, cs iothub.ConnectionString) serve.Handler {
	t.Helper()
	set, err := engine.Parse("handlers.yaml", []byte(yaml), engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return serve.Handler{Engine: engine.New(set), DeviceID: cs.DeviceID, ModuleID: cs.ModuleID}
}

// rest calls a method through the hub's HTTPS REST API, as a service would.
func (h *e2eHub) rest(t testing.TB, device, module, method string, payload string) (iothub.MethodResult, *iothub.Error) {
	t.Helper()
	svc, err := iothub.ParseServiceConnectionString(h.info.ServiceConnectionString)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := iothub.Sign(svc.HostName, svc.SharedAccessKey, svc.SharedAccessKeyName, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	body := iothub.MethodRequest{MethodName: method, Payload: json.RawMessage(payload), ResponseTimeoutInSeconds: 10}.Encode()
	url := "https://" + h.info.HTTPSAddr + iothub.MethodsPath(device, module) + "?" + iothub.MethodsQuery
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", tok)
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: h.roots(t), ServerName: h.info.HostName}}}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		return iothub.MethodResult{}, iothub.ParseError(resp.StatusCode, resp.Header.Get(iothub.ErrorCodeHeader), b)
	}
	var r iothub.MethodResult
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("result %s: %v", b, err)
	}
	return r, nil
}

// invoke calls through hub.Invoke with a unique payload id and checks that
// the reply echoes it. It returns an error describing any failure.
func invokeEcho(ctx context.Context, h *localhub.Hub, device, id string) error {
	res, herr := h.Invoke(ctx, device, "", iothub.MethodRequest{MethodName: "echo",
		Payload: json.RawMessage(fmt.Sprintf(`{"id":%q}`, id)), ResponseTimeoutInSeconds: 10})
	if herr != nil {
		return herr
	}
	if res.Status != 200 {
		return fmt.Errorf("call %s: status %d", id, res.Status)
	}
	var got struct{ ID string }
	if err := json.Unmarshal(res.Payload, &got); err != nil || got.ID != id {
		return fmt.Errorf("call %s answered with %s", id, res.Payload)
	}
	return nil
}

// echoHandler answers "echo" with the request payload.
type echoHandler struct{}

func (echoHandler) HandleMethod(_ context.Context, r device.Request) device.Response {
	return device.Response{Status: 200, Payload: r.Payload}
}

// wsGateway is the GatewayHostName that dials the hub's WSS listener.
func (h *e2eHub) wsGateway() string {
	_, port, _ := net.SplitHostPort(h.info.WSAddr)
	return net.JoinHostPort(h.info.HostName, port)
}
