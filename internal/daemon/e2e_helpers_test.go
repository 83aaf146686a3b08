package daemon

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/methodd/methodd/engine"
	"github.com/methodd/methodd/internal/device"
	"github.com/methodd/methodd/internal/handlersfile"
	"github.com/methodd/methodd/internal/localhub"
	"github.com/methodd/methodd/internal/testkit"
	"github.com/methodd/methodd/invoke"
	"github.com/methodd/methodd/iothub"
)

// Helpers of the end-to-end tests (e2e_test.go): a local hub on 127.0.0.1:0
// with real paho and real TLS, and the daemon run through Run, as `methodd
// run` runs it. Every name here starts with e2e so that it cannot collide
// with the other test helpers of the package.

// e2eHub is a local hub on 127.0.0.1:0 for one test.
type e2eHub struct {
	*localhub.Hub
	opts localhub.Options
	info localhub.Info
}

// e2eStartHub starts a hub with devices registered ("dev" or "dev/mod"),
// with a WebSocket listener when ws is set, closed when the test ends.
func e2eStartHub(t testing.TB, ws bool, devices ...string) *e2eHub {
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
func (h *e2eHub) roots(t testing.TB) *x509.CertPool { return testkit.CertPool(t, h.info.CAFile) }

// device is the daemon's session config for identity id ("dev" or
// "dev/mod"), with a back-off short enough for a test.
func (h *e2eHub) device(t testing.TB, id string) device.Config {
	t.Helper()
	cs, err := iothub.ParseDeviceConnectionString(h.info.Devices[id])
	if err != nil {
		t.Fatalf("identity %s: %v", id, err)
	}
	return device.Config{Identity: cs, RootCAs: h.roots(t), BackoffMin: 50 * time.Millisecond, BackoffMax: time.Second}
}

// wsGateway is the GatewayHostName that dials the hub's WSS listener.
func (h *e2eHub) wsGateway() string {
	_, port, _ := net.SplitHostPort(h.info.WSAddr)
	return net.JoinHostPort(h.info.HostName, port)
}

// rest calls a method through the hub's HTTPS REST API with the project's
// own service client, as `methodd invoke` does. The error of a failed call
// is an *iothub.Error (errors.As) with the hub's code.
func (h *e2eHub) rest(t testing.TB, device, module, method string, payload string) (invoke.Result, error) {
	t.Helper()
	svc, err := iothub.ParseServiceConnectionString(h.info.ServiceConnectionString)
	if err != nil {
		t.Fatal(err)
	}
	c, err := invoke.NewClient(svc, invoke.ClientOptions{RootCAs: h.roots(t), Addr: h.info.HTTPSAddr})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.Invoke(t.Context(), invoke.Target{Device: device, Module: module},
		iothub.MethodRequest{MethodName: method, Payload: json.RawMessage(payload), ResponseTimeoutInSeconds: 10})
}

// e2eMixedReply is a reply that does not belong to the call it answered.
type e2eMixedReply struct {
	id      string // the call's id
	payload []byte // what it was answered with
}

func (e *e2eMixedReply) Error() string {
	return fmt.Sprintf("call %s answered with %s", e.id, e.payload)
}

// e2eInvokeEcho calls "echo" through hub.Invoke with a unique payload id
// and checks that the reply echoes it. It returns an error describing any
// failure: the hub's (an *iothub.Error), a status other than 200, or an
// *e2eMixedReply when the reply is not this call's.
func e2eInvokeEcho(ctx context.Context, h *localhub.Hub, device, id string) error {
	res, err := h.Invoke(ctx, device, "", iothub.MethodRequest{MethodName: "echo",
		Payload: json.RawMessage(fmt.Sprintf(`{"id":%q}`, id)), ResponseTimeoutInSeconds: 10})
	if err != nil {
		return err
	}
	if res.Status != 200 {
		return fmt.Errorf("call %s: status %d", id, res.Status)
	}
	var got struct{ ID string }
	if err := json.Unmarshal(res.Payload, &got); err != nil || got.ID != id {
		return &e2eMixedReply{id: id, payload: res.Payload}
	}
	return nil
}

// e2eIsMixed reports whether err is a reply given to the wrong call.
func e2eIsMixed(err error) bool {
	var m *e2eMixedReply
	return errors.As(err, &m)
}

// e2eStates collects what a daemon reports: its session states
// (Config.OnState) and that it is ready (Config.OnReady).
type e2eStates struct {
	mu        sync.Mutex
	all       []device.State
	connected chan device.State
	ready     chan struct{} // closed by OnReady, which runs once
}

func e2eNewStates() *e2eStates {
	return &e2eStates{connected: make(chan device.State, 1024), ready: make(chan struct{})}
}

func (s *e2eStates) onReady() { close(s.ready) }

func (s *e2eStates) record(st device.State) {
	s.mu.Lock()
	s.all = append(s.all, st)
	s.mu.Unlock()
	if st.Kind == device.Connected {
		s.connected <- st
	}
}

func (s *e2eStates) count(pred func(device.State) bool) int {
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

// waitReady waits for the daemon to be ready (OnReady: its session
// connected and subscribed for the first time) and for the Connected state
// it reports with it.
func (s *e2eStates) waitReady(t testing.TB, within time.Duration) {
	t.Helper()
	select {
	case <-s.ready:
	case <-time.After(within):
		t.Fatalf("not ready within %v", within)
	}
	s.waitConnected(t, within)
}

// waitConnected waits for the next Connected state (connected and
// subscribed: calls can be answered).
func (s *e2eStates) waitConnected(t testing.TB, within time.Duration) device.State {
	t.Helper()
	select {
	case st := <-s.connected:
		return st
	case <-time.After(within):
		t.Fatalf("not connected within %v", within)
		return device.State{}
	}
}

// e2eRun runs the daemon until the test ends, as `methodd run` does: yaml
// is written to a handlers file in a fresh directory and loaded by the one
// load path (engine options eng, for start-up and reloads alike), dev is
// its session; each edit then changes the Config (after its OnState and
// OnReady are set). It returns the session states the daemon reports; the
// test fails if Run returns an error or does not return within 30 s of the
// test's end.
func e2eRun(t testing.TB, yaml string, dev device.Config, eng engine.Options, edits ...func(*Config)) *e2eStates {
	t.Helper()
	path := filepath.Join(t.TempDir(), "handlers.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	opts := handlersfile.Options{DaemonUID: os.Geteuid(), Engine: eng}
	l, err := handlersfile.Load(path, opts)
	if err != nil || l.Unsafe != nil {
		t.Fatalf("load %s: %v %v", path, err, l.Unsafe)
	}
	st := e2eNewStates()
	cfg := Config{Path: path, Loaded: l, Load: opts, Device: dev, OnState: st.record, OnReady: st.onReady}
	for _, edit := range edits {
		edit(&cfg)
	}
	testkit.Background(t, "Run", func(ctx context.Context) error { return Run(ctx, cfg) })
	return st
}
