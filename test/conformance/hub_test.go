package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"

	"github.com/methodd/methodd/internal/localhub"
	"github.com/methodd/methodd/internal/testkit"
	"github.com/methodd/methodd/iothub"
)

// hubEnv is a running local hub plus what the Node scripts need to reach it.
type hubEnv struct {
	hub  *localhub.Hub
	info localhub.Info

	// serviceCS is the hub's service connection string with HostName
	// "localhost" (no port), exactly like a real hub's: the SDK dials port
	// 443 of it and redirect.js sends that to the REST port.
	serviceCS string
	redirect  string // METHODD_REDIRECT for redirect.js

	mu      sync.Mutex
	devices map[string]string // "id" or "id/mod" → connection string
}

// startHub starts an in-process local hub on free loopback ports with the
// given faults; the test's cleanup closes it.
func startHub(t *testing.T, faults localhub.Faults) *hubEnv {
	t.Helper()
	return startHubWith(t, localhub.Options{Faults: faults})
}

// startHubWith starts an in-process local hub on free loopback ports with
// the faults, provisioning and X.509 options of opts (Dir, addresses and
// logger are filled in); the test's cleanup closes it.
func startHubWith(t *testing.T, opts localhub.Options) *hubEnv {
	t.Helper()
	opts.Dir = t.TempDir()
	opts.MQTTAddr = "127.0.0.1:0"
	opts.HTTPSAddr = "127.0.0.1:0"
	if opts.DPSAddr != "" {
		opts.DPSAddr = "127.0.0.1:0"
	}
	opts.Logger = testLogger(t)
	hub, err := localhub.Start(context.Background(), opts)
	if err != nil {
		t.Fatalf("start local hub: %v", err)
	}
	t.Cleanup(func() { hub.Close() })
	info := hub.Info()
	cs, err := iothub.ParseServiceConnectionString(info.ServiceConnectionString)
	if err != nil {
		t.Fatalf("hub's service connection string: %v", err)
	}
	host, _, err := net.SplitHostPort(cs.HostName)
	if err != nil {
		t.Fatalf("hub's service HostName %q has no port: %v", cs.HostName, err)
	}
	cs.HostName = host
	return &hubEnv{
		hub:       hub,
		info:      info,
		serviceCS: cs.String(),
		redirect:  host + ":443=" + info.HTTPSAddr,
		devices:   map[string]string{},
	}
}

// testLogger keeps the hub's logs (Debug) and prints them only if the test
// fails (or CONFORMANCE_HUB_LOG is set), so a failing scenario shows what the
// hub saw without flooding -v.
func testLogger(t *testing.T) *slog.Logger {
	buf := &testkit.SyncBuffer{}
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("CONFORMANCE_HUB_LOG") != "" {
			t.Logf("local hub log:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// device registers (idempotently) the identity "id" or "id/module" and
// returns its connection string.
func (h *hubEnv) device(id, module string) (string, error) {
	key := id
	if module != "" {
		key += "/" + module
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if cs, ok := h.devices[key]; ok {
		return cs, nil
	}
	cs, err := h.hub.AddDevice(id, module)
	if err != nil {
		return "", fmt.Errorf("add device %s: %w", key, err)
	}
	h.devices[key] = cs
	return cs, nil
}

// deviceOptions tune one device.js.
type deviceOptions struct {
	tokenRenewal string // "valid:margin" seconds, the SDK's tokenRenewal option
}

// startDevice runs device.js for an identity with the given connection string.
func (h *hubEnv) startDevice(ctx context.Context, t *testing.T, name, cs string, o deviceOptions) (*node, error) {
	env := []string{"DEVICE_CONNECTION_STRING=" + cs, "DEVICE_CA_FILE=" + h.info.CAFile}
	if o.tokenRenewal != "" {
		env = append(env, "DEVICE_TOKEN_RENEWAL="+o.tokenRenewal)
	}
	return startNode(ctx, t, "device.js ("+name+")", env, "device.js")
}

// readyDevice registers the identity, starts device.js and waits for its
// methods subscription.
func (h *hubEnv) readyDevice(ctx context.Context, t *testing.T, id, module string, o deviceOptions) (*node, error) {
	cs, err := h.device(id, module)
	if err != nil {
		return nil, err
	}
	d, err := h.startDevice(ctx, t, id, cs, o)
	if err != nil {
		return nil, err
	}
	if _, err := d.waitFor(ctx, "ready", isEvent("ready")); err != nil {
		return nil, err
	}
	return d, nil
}

// call is one invokeDeviceMethod of service.js.
type call struct {
	Device                   string          `json:"device"`
	Module                   string          `json:"module,omitempty"`
	MethodName               string          `json:"methodName"`
	Payload                  json.RawMessage `json:"payload,omitempty"`
	ResponseTimeoutInSeconds int             `json:"responseTimeoutInSeconds,omitempty"`
	ConnectTimeoutInSeconds  int             `json:"connectTimeoutInSeconds,omitempty"`
}

// serviceSpec is service.js's argument.
type serviceSpec struct {
	Calls         []call `json:"calls"`
	EveryMS       int    `json:"everyMs,omitempty"`
	ForMS         int    `json:"forMs,omitempty"`
	StopOnFailure bool   `json:"stopOnFailure,omitempty"`
}

// startService runs service.js with the hub's service connection string (or
// cs, if not empty) and the redirect preload.
func (h *hubEnv) startService(ctx context.Context, t *testing.T, spec serviceSpec, cs string) (*node, error) {
	if cs == "" {
		cs = h.serviceCS
	}
	arg, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	env := []string{
		"SERVICE_CONNECTION_STRING=" + cs,
		"NODE_EXTRA_CA_CERTS=" + h.info.CAFile,
		"METHODD_REDIRECT=" + h.redirect,
	}
	return startNode(ctx, t, "service.js", env, "-r", "./redirect.js", "service.js", string(arg))
}

// invoke runs service.js to completion and returns one result per call, in
// the order of spec.Calls.
func (h *hubEnv) invoke(ctx context.Context, t *testing.T, cs string, calls ...call) ([]event, error) {
	s, err := h.startService(ctx, t, serviceSpec{Calls: calls}, cs)
	if err != nil {
		return nil, err
	}
	if _, err := s.waitFor(ctx, "done", func(e event) bool { return e.Done }); err != nil {
		return nil, err
	}
	results := make([]event, len(calls))
	for _, ev := range s.snapshot() {
		if ev.I != nil && *ev.I < len(calls) {
			results[*ev.I] = ev
		}
	}
	for i, r := range results {
		if r.Raw == "" {
			return nil, fmt.Errorf("service.js printed no result for call %d; %s", i, s.tail())
		}
	}
	return results, nil
}

// invokeOne runs one call with the hub's own service credentials.
func (h *hubEnv) invokeOne(ctx context.Context, t *testing.T, c call) (event, error) {
	rs, err := h.invoke(ctx, t, "", c)
	if err != nil {
		return event{}, err
	}
	return rs[0], nil
}

func isEvent(name string) func(event) bool {
	return func(e event) bool { return e.Event == name }
}
