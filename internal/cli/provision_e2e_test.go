package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/methodd/methodd/internal/device"
	"github.com/methodd/methodd/internal/localhub"
	"github.com/methodd/methodd/internal/testkit"
	"github.com/methodd/methodd/invoke"
	"github.com/methodd/methodd/iothub"
)

// provisionedDaemon is one `methodd run` in-process, its session's states
// on a channel.
type provisionedDaemon struct {
	states chan device.State
	stderr *testkit.SyncBuffer
	stop   func()
}

// startProvisioned runs `methodd run --config cfg` until stop or the test's
// end; it must then exit without error.
func startProvisioned(t *testing.T, cfg string) *provisionedDaemon {
	t.Helper()
	d := &provisionedDaemon{states: make(chan device.State, 256), stderr: &testkit.SyncBuffer{}}
	env := map[string]string{"HOME": t.TempDir()}
	cmd := &runCmd{
		env:     Env{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: d.stderr, Getenv: func(k string) string { return env[k] }},
		onState: func(st device.State) { d.states <- st },
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("run's stderr:\n%s", d.stderr.String())
		}
	}) // runs after the stop below: cleanups run last-in first-out
	d.stop = testkit.Background(t, "run", func(ctx context.Context) error {
		return cmd.Run(ctx, []string{"--config", cfg, "--drain-timeout", "2s"})
	})
	return d
}

// waitState returns the first state change of kind, failing after 30 s.
// Every change before it is passed to seen, if set.
func (d *provisionedDaemon) waitState(t *testing.T, kind device.StateKind, seen func(device.State)) device.State {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case st := <-d.states:
			if st.Kind == kind {
				return st
			}
			if seen != nil {
				seen(st)
			}
		case <-deadline:
			t.Fatalf("no %v state within 30 s; stderr:\n%s", kind, d.stderr.String())
		}
	}
}

// ping calls the built-in ping on id through the hub and checks the 200.
func ping(t *testing.T, h *localhub.Hub, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := h.Invoke(ctx, id, "", iothub.MethodRequest{MethodName: "ping", ResponseTimeoutInSeconds: 10, ConnectTimeoutInSeconds: 10})
	if err != nil || res.Status != 200 {
		t.Fatalf("ping %s: got %+v, %v; want status 200", id, res, err)
	}
}

// provisioningConfig writes a handlers file whose only identity source is
// connection.provisioning with the group key keyB64, and returns its path
// and the cache's.
func provisioningConfig(t *testing.T, info localhub.Info, reg, keyB64 string) (cfg, cache string) {
	t.Helper()
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "group.key")
	if err := os.WriteFile(keyFile, []byte(keyB64+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(info.MQTTAddr)
	cache = filepath.Join(dir, "state", "provisioning.json")
	cfg = filepath.Join(dir, "handlers.yaml")
	writeConfig(t, cfg, fmt.Sprintf(`version: 1
connection:
  ca_file: %s
  gateway_host_name: localhost:%s
  provisioning:
    id_scope: %s
    registration_id: %s
    endpoint: %s
    group_key_file: group.key
    cache: %s
methods: {}
`, info.CAFile, port, info.DPS.IDScope, reg, info.DPS.Addr, cache))
	return cfg, cache
}

// startDPSHub starts a local hub with a DPS endpoint and the enrollment
// group "fleet"; every hub event goes to events.
func startDPSHub(t *testing.T, events chan localhub.Event) *localhub.Hub {
	t.Helper()
	h, err := localhub.Start(context.Background(), localhub.Options{
		Dir: t.TempDir(), MQTTAddr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0", DPSAddr: "127.0.0.1:0",
		EnrollmentGroups: []string{"fleet"},
		OnEvent: func(e localhub.Event) {
			select {
			case events <- e:
			default: // the test reads only what it waits for
			}
		},
	})
	if err != nil {
		t.Fatalf("start local hub: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	if h.Info().DPS == nil {
		t.Fatal("the hub serves no DPS endpoint")
	}
	return h
}

// TestRunProvisionsThroughDPS is provisioning end to end: `methodd run`
// with only connection.provisioning registers through the hub's DPS
// endpoint (group enrollment, derived key), connects through the gateway
// host name and answers; its cache holds the assignment and no key; a
// restart connects from the cache with the enrollment disabled (DPS would
// refuse); and when the device is deleted from the registry the hub
// refuses the identity, and the daemon provisions again and answers.
func TestRunProvisionsThroughDPS(t *testing.T) {
	events := make(chan localhub.Event, 1024)
	h := startDPSHub(t, events)
	info := h.Info()
	groupKey := info.DPS.Groups["fleet"]
	const reg = "gw-e2e"
	cfg, cache := provisioningConfig(t, info, reg, groupKey)

	d := startProvisioned(t, cfg)
	d.waitState(t, device.Connected, nil)
	ping(t, h, reg)
	d.stop()

	st, err := os.Stat(cache)
	if err != nil {
		t.Fatalf("no provisioning cache: %v", err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("cache mode: got %v, want 0600", st.Mode().Perm())
	}
	b, _ := os.ReadFile(cache)
	derived, _ := iothub.DeriveDeviceKey(groupKey, reg)
	if bytes.Contains(b, []byte(groupKey)) || bytes.Contains(b, []byte(derived)) {
		t.Errorf("the cache holds key material:\n%s", b)
	}
	var ca struct{ AssignedHub, DeviceID, IDScope, RegistrationID string }
	if err := json.Unmarshal(b, &ca); err != nil || ca.DeviceID != reg || ca.AssignedHub == "" || ca.IDScope != info.DPS.IDScope {
		t.Errorf("cache: got %+v (%v), want the assignment of %s", ca, err, reg)
	}
	if strings.Contains(d.stderr.String(), groupKey) || strings.Contains(d.stderr.String(), derived) {
		t.Error("the log holds key material")
	}

	// A restart does not contact DPS: with the enrollment disabled, a
	// registration would fail, yet the first attempt connects.
	if err := h.SetEnrollmentEnabled(localhub.EnrollmentGroup, "fleet", false); err != nil {
		t.Fatal(err)
	}
	d = startProvisioned(t, cfg)
	if first := d.waitState(t, device.Connected, func(st device.State) {
		if st.Kind == device.Disconnected {
			t.Errorf("restart from the cache: attempt %d failed: %v", st.Conn, st.Err)
		}
	}); first.Conn != 1 {
		t.Errorf("restart from the cache connected at attempt %d, want 1", first.Conn)
	}
	ping(t, h, reg)
	if err := h.SetEnrollmentEnabled(localhub.EnrollmentGroup, "fleet", true); err != nil {
		t.Fatal(err)
	}

	// Deleted from the registry: the hub refuses the identity, the daemon
	// registers again and is back.
	drain(events)
	deleteDevice(t, info, reg)
	failed := 0
	d.waitState(t, device.Connected, func(st device.State) {
		if st.Kind == device.Disconnected && st.Err != nil {
			failed++
		}
	})
	if failed == 0 {
		t.Error("the deletion ended no connection")
	}
	waitEvent(t, events, func(e localhub.Event) bool {
		return e.Kind == localhub.EventConnRefused && e.ClientID == reg && errors.Is(e.Err, localhub.ErrUnknownIdentity)
	})
	ping(t, h, reg)
}

// TestRunProvisioningWithAWrongKey: a group key DPS does not know keeps the
// daemon retrying with back-off, each failed attempt a Disconnected state
// carrying DPS's refusal; it never crashes and stops cleanly.
func TestRunProvisioningWithAWrongKey(t *testing.T) {
	h := startDPSHub(t, make(chan localhub.Event, 1))
	cfg, cache := provisioningConfig(t, h.Info(), "gw-wrong", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
	d := startProvisioned(t, cfg)
	var last time.Duration
	for i := 1; i <= 2; i++ {
		st := d.waitState(t, device.Disconnected, nil)
		var pe *device.ProvisionError
		if !errors.As(st.Err, &pe) || pe.Status != 401 {
			t.Fatalf("attempt %d: got %v, want DPS's 401 refusal", st.Conn, st.Err)
		}
		if st.RetryIn <= 0 || (i > 1 && st.RetryIn < last) {
			t.Errorf("attempt %d: retry in %v after %v, want a growing back-off", st.Conn, st.RetryIn, last)
		}
		last = st.RetryIn
	}
	d.stop()
	if _, err := os.Stat(cache); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused registration left a cache: %v", err)
	}
}

// deleteDevice deletes id from the hub's registry through its REST API.
func deleteDevice(t *testing.T, info localhub.Info, id string) {
	t.Helper()
	scs, err := iothub.ParseServiceConnectionString(info.ServiceConnectionString)
	if err != nil {
		t.Fatal(err)
	}
	c, err := invoke.NewClient(scs, invoke.ClientOptions{RootCAs: testkit.CertPool(t, info.CAFile), Addr: info.HTTPSAddr})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.DeleteDevice(ctx, id); err != nil {
		t.Fatalf("delete %s: %v", id, err)
	}
}

// drain discards the events received so far.
func drain(events chan localhub.Event) {
	for {
		select {
		case <-events:
		default:
			return
		}
	}
}

// waitEvent waits, at most 30 s, for an event matching ok.
func waitEvent(t *testing.T, events chan localhub.Event, ok func(localhub.Event) bool) localhub.Event {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case e := <-events:
			if ok(e) {
				return e
			}
		case <-deadline:
			t.Fatal("no matching hub event within 30 s")
			return localhub.Event{}
		}
	}
}

// TestRunProvisionsX509OverWebSockets: `methodd run` with an X.509
// certificate (issued by the hub's CA, CN = registration id) and
// transport mqtt-ws registers through the DPS endpoint's WebSocket
// listener and the hub's X.509 CA group, connects to the hub over
// WebSockets with the same certificate and answers; deleted from the
// registry, it registers again and answers.
func TestRunProvisionsX509OverWebSockets(t *testing.T) {
	const reg = "cam-e2e"
	h, err := localhub.Start(context.Background(), localhub.Options{
		Dir: t.TempDir(), MQTTAddr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0", WSAddr: "127.0.0.1:0",
		DPSAddr: "127.0.0.1:0", DPSWSAddr: "127.0.0.1:0", X509EnrollmentGroups: []string{"cams"},
		X509Devices: []string{reg}, // issues the certificate (and registers it; DPS re-registers)
	})
	if err != nil {
		t.Fatalf("start local hub: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	info := h.Info()
	files := info.X509[reg]
	_, wsPort, _ := net.SplitHostPort(info.WSAddr)
	deleteDevice(t, info, reg) // only DPS can bring it back
	dir := t.TempDir()
	cache := filepath.Join(dir, "provisioning.json")
	cfg := filepath.Join(dir, "handlers.yaml")
	writeConfig(t, cfg, fmt.Sprintf(`version: 1
connection:
  transport: mqtt-ws
  ca_file: %s
  gateway_host_name: localhost:%s
  provisioning:
    id_scope: %s
    registration_id: %s
    endpoint: %s
    cert_file: %s
    key_file: %s
    cache: %s
methods: {}
`, info.CAFile, wsPort, info.DPS.IDScope, reg, info.DPS.WSAddr, files.CertFile, files.KeyFile, cache))

	d := startProvisioned(t, cfg)
	d.waitState(t, device.Connected, nil)
	ping(t, h, reg)
	if _, err := os.Stat(cache); err != nil {
		t.Fatalf("no provisioning cache: %v", err)
	}
	cs, err := iothub.ParseDeviceConnectionString(h.Info().Devices[reg])
	if err != nil || !cs.X509 {
		t.Fatalf("the hub registered %+v (%v), want an X.509 identity", cs, err)
	}
	deleteDevice(t, info, reg)
	d.waitState(t, device.Disconnected, nil)
	d.waitState(t, device.Connected, nil)
	ping(t, h, reg)
}
