package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/methodd/methodd/internal/localhub"
	"github.com/methodd/methodd/internal/testkit"
	"github.com/methodd/methodd/iothub"
)

// simEchoConfig answers echo with the request's payload; its concurrency
// is the whole simulated fleet's (one shared engine).
const simEchoConfig = "version: 1\ndefaults: {concurrency: 64}\nmethods:\n  echo: {reply: {payload: payload}}\n"

func TestSimDeviceIDs(t *testing.T) {
	cases := []struct {
		prefix      string
		n           int
		first, last string
	}{
		{"sim-", 5, "sim-1", "sim-5"},
		{"sim-", 10, "sim-01", "sim-10"},
		{"gw.", 10000, "gw.00001", "gw.10000"},
		{"", 100, "001", "100"},
	}
	for _, tc := range cases {
		ids := simDeviceIDs(tc.prefix, tc.n)
		if len(ids) != tc.n || ids[0] != tc.first || ids[len(ids)-1] != tc.last {
			t.Errorf("simDeviceIDs(%q, %d): got %d ids %q..%q, want %q..%q", tc.prefix, tc.n, len(ids), ids[0], ids[len(ids)-1], tc.first, tc.last)
		}
	}
}

func TestSimulateUsageErrors(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "handlers.yaml")
	writeConfig(t, cfg, simEchoConfig)
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no devices", []string{"--config", cfg, "--local"}, "--devices must be 1..100000"},
		{"too many", []string{"--devices", "100001", "--config", cfg, "--local"}, "--devices must be"},
		{"no config", []string{"--devices", "3", "--local"}, "--config is required"},
		{"bad prefix", []string{"--devices", "3", "--prefix", "a b", "--config", cfg, "--local"}, "not allowed in a device id"},
		{"long prefix", []string{"--devices", "3", "--prefix", strings.Repeat("p", 128), "--config", cfg, "--local"}, "the hub allows 128"},
		{"both hubs", []string{"--devices", "3", "--config", cfg, "--local", "--connection-string", "HostName=h;SharedAccessKeyName=n;SharedAccessKey=aGk="}, "exclude each other"},
		{"argument", []string{"--devices", "3", "--config", cfg, "--local", "extra"}, "unexpected argument"},
		{"no hub", []string{"--devices", "3", "--config", cfg}, "no hub"},
		{"invalid file", []string{"--devices", "3", "--config", cfg + ".missing", "--local"}, "simulate:"},
		{"log level", []string{"--devices", "3", "--config", cfg, "--local", "--log-level", "loud"}, "--log-level"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var errb testkit.SyncBuffer
			env := Env{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: &errb, Getenv: func(string) string { return "" }}
			if code := Run(context.Background(), append([]string{"simulate"}, tc.args...), env); code != exitUsage {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, exitUsage, errb.String())
			}
			if !strings.Contains(errb.String(), tc.want) {
				t.Errorf("stderr %q, want it to mention %q", errb.String(), tc.want)
			}
		})
	}
}

// liveConns follows the hub's live connections through its events.
type liveConns struct {
	mu      sync.Mutex
	live    map[string]bool
	changed chan struct{} // closed and replaced at every change
}

func newLiveConns() *liveConns {
	return &liveConns{live: map[string]bool{}, changed: make(chan struct{})}
}

func (l *liveConns) onEvent(e localhub.Event) {
	if e.Kind != localhub.EventSubscribed && e.Kind != localhub.EventDisconnected {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if e.Kind == localhub.EventSubscribed {
		l.live[e.ClientID] = true
	} else {
		delete(l.live, e.ClientID)
	}
	close(l.changed)
	l.changed = make(chan struct{})
}

// waitCount waits until exactly n identities are live.
func (l *liveConns) waitCount(t *testing.T, n int, what string) {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		l.mu.Lock()
		got, changed := len(l.live), l.changed
		l.mu.Unlock()
		if got == n {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("%s: %d live connections after 60 s, want %d", what, got, n)
		}
	}
}

// startSimHub starts a local hub whose live connections are followed.
func startSimHub(t *testing.T) (*testHub, *liveConns) {
	t.Helper()
	live := newLiveConns()
	dir := t.TempDir()
	h, err := localhub.Start(context.Background(), localhub.Options{
		Dir: dir, MQTTAddr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0", OnEvent: live.onEvent,
	})
	if err != nil {
		t.Fatalf("start local hub: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	return &testHub{hub: h, dir: dir, info: h.Info()}, live
}

// simRun is one simulate running in the background.
type simRun struct {
	cancel context.CancelFunc
	done   chan error
	ready  chan struct{} // closed when every device is connected
	stderr *testkit.SyncBuffer
}

// startSimulate runs `methodd simulate args...` in the background.
func startSimulate(t *testing.T, args ...string) *simRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &simRun{cancel: cancel, done: make(chan error, 1), ready: make(chan struct{}), stderr: &testkit.SyncBuffer{}}
	var once sync.Once
	cmd := &simulateCmd{
		env:            Env{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: r.stderr, Getenv: func(string) string { return "" }},
		onAllConnected: func() { once.Do(func() { close(r.ready) }) },
	}
	go func() { r.done <- cmd.Run(ctx, args) }()
	t.Cleanup(func() {
		cancel()
		// Wait for Run to return; the tests that care check its result with stop.
		if err := <-r.done; err != nil {
			t.Logf("simulate returned: %v", err)
		}
	})
	return r
}

// waitReady waits for every device to be connected.
func (r *simRun) waitReady(t *testing.T) {
	t.Helper()
	select {
	case <-r.ready:
	case err := <-r.done:
		r.done <- err // for the cleanup, which waits on done
		t.Fatalf("simulate ended before all devices connected: %v; stderr:\n%s", err, r.stderr.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("not all devices connected within 60 s; stderr:\n%s", r.stderr.String())
	}
}

// stop cancels the run and returns its error.
func (r *simRun) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err // for the cleanup
		return err
	case <-time.After(30 * time.Second):
		t.Fatalf("simulate did not stop within 30 s; stderr:\n%s", r.stderr.String())
		return nil
	}
}

// TestSimulateFleetOnLocalHub registers five devices on a local hub, runs
// them, calls each through the hub, stops them all, and runs again with the
// same prefix, which reuses the devices.
func TestSimulateFleetOnLocalHub(t *testing.T) {
	h, live := startSimHub(t)
	cfg := filepath.Join(t.TempDir(), "handlers.yaml")
	writeConfig(t, cfg, simEchoConfig)
	args := []string{"--local", "--hub-dir", h.dir, "--devices", "5", "--prefix", "gw-", "--config", cfg, "--connects", "2"}
	ids := simDeviceIDs("gw-", 5)

	r := startSimulate(t, args...)
	r.waitReady(t)
	live.waitCount(t, 5, "first run")
	for i, id := range ids {
		want := fmt.Sprintf(`{"device":%q,"n":%d}`, id, i)
		res, err := h.hub.Invoke(context.Background(), id, "", iothub.MethodRequest{MethodName: "echo", Payload: json.RawMessage(want), ResponseTimeoutInSeconds: 10})
		if err != nil {
			t.Fatalf("invoke %s: %v", id, err)
		}
		if res.Status != 200 || string(res.Payload) != want {
			t.Errorf("%s echo: got %d %s, want 200 %s", id, res.Status, res.Payload, want)
		}
	}
	if err := r.stop(t); err != nil {
		t.Fatalf("simulate returned %v, want nil; stderr:\n%s", err, r.stderr.String())
	}
	live.waitCount(t, 0, "after the stop")
	out := r.stderr.String()
	for _, want := range []string{"5 devices registered (5 new, 0 existing)", "5 devices connected in", "5 devices stopped"} {
		if !strings.Contains(out, want) {
			t.Errorf("stderr lacks %q:\n%s", want, out)
		}
	}

	again := startSimulate(t, args...)
	again.waitReady(t)
	live.waitCount(t, 5, "second run")
	if res, err := h.hub.Invoke(context.Background(), ids[4], "", iothub.MethodRequest{MethodName: "echo", Payload: json.RawMessage(`1`), ResponseTimeoutInSeconds: 10}); err != nil || res.Status != 200 {
		t.Errorf("second run, invoke %s: got %+v, %v", ids[4], res, err)
	}
	if err := again.stop(t); err != nil {
		t.Fatalf("second simulate returned %v", err)
	}
	live.waitCount(t, 0, "after the second stop")
	if out := again.stderr.String(); !strings.Contains(out, "5 devices registered (0 new, 5 existing)") {
		t.Errorf("second run's stderr does not show the devices reused:\n%s", out)
	}
	if n := len(h.hub.Info().Devices); n != 5 {
		t.Errorf("hub.json lists %d devices, want 5", n)
	}
}

// TestSimulateRegistrationFailure: a key the hub refuses stops before any
// session, exit 5, naming the device and never the key.
func TestSimulateRegistrationFailure(t *testing.T) {
	h := startTestHub(t)
	cfg := filepath.Join(t.TempDir(), "handlers.yaml")
	writeConfig(t, cfg, simEchoConfig)
	cs, err := iothub.ParseServiceConnectionString(h.info.ServiceConnectionString)
	if err != nil {
		t.Fatal(err)
	}
	const wrongKey = "V1JPTkctS0VZLTAxMjM0NTY3ODlhYmNkZWY="
	bad := fmt.Sprintf("HostName=%s;SharedAccessKeyName=%s;SharedAccessKey=%s", cs.HostName, cs.SharedAccessKeyName, wrongKey)
	var errb testkit.SyncBuffer
	env := Env{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: &errb, Getenv: h.env()}
	code := Run(context.Background(), []string{"simulate", "--devices", "3", "--config", cfg, "--connection-string", bad, "--ca-file", h.info.CAFile}, env)
	if code != exitHubError {
		t.Errorf("exit %d, want %d; stderr:\n%s", code, exitHubError, errb.String())
	}
	out := errb.String()
	if !strings.Contains(out, "create device sim-") || !strings.Contains(out, "401") || strings.Contains(out, wrongKey) {
		t.Errorf("stderr %q: want the device, the 401 and no key", out)
	}
	if n := len(h.hub.Info().Devices); n != 0 {
		t.Errorf("%d devices registered despite the refusal", n)
	}
}

// TestSimulateRefusesAnUnsafeFile: a handlers file others may write is
// refused as run refuses it (exit 1), before any request.
func TestSimulateRefusesAnUnsafeFile(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "handlers.yaml")
	writeConfig(t, cfg, simEchoConfig)
	if err := os.Chmod(cfg, 0o666); err != nil {
		t.Fatal(err)
	}
	var errb testkit.SyncBuffer
	env := Env{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: &errb, Getenv: func(string) string { return "" }}
	if code := Run(context.Background(), []string{"simulate", "--devices", "2", "--config", cfg, "--local", "--hub-dir", t.TempDir()}, env); code != exitFailure {
		t.Errorf("exit %d, want %d; stderr:\n%s", code, exitFailure, errb.String())
	}
	if !strings.Contains(errb.String(), "refusing to start") {
		t.Errorf("stderr %q, want the refusal", errb.String())
	}
}
