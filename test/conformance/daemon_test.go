package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/methodd/methodd/internal/localhub"
	"github.com/methodd/methodd/internal/testkit"
)

// daemonDevice is the identity `methodd run` connects as.
const daemonDevice = "daemon-dev"

// daemonScenarios: SDK service → local hub → `methodd run` with
// handlers.yaml.example (issue 7). Every call allows the daemon 30 s to
// connect (connectTimeoutInSeconds), so no scenario needs to know when it
// is up: the hub holds the call until the daemon has subscribed.
var daemonScenarios = []scenario{
	{"expression_method_ping", 45 * time.Second, daemonExpressionMethod},
	{"command_method_kernel", 45 * time.Second, daemonCommandMethod},
	{"params_violation_400", 45 * time.Second, daemonParamsViolation},
	{"unknown_method_404_with_list", 45 * time.Second, daemonUnknownMethod},
}

// TestDaemon judges `methodd run` (with the shipped handlers.yaml.example)
// by the SDK service client.
func TestDaemon(t *testing.T) {
	requireNodeModules(t)
	t.Parallel()
	bin := methodd.get(t)
	h := startHub(t, localhub.Faults{})
	if err := startDaemon(t, h, bin); err != nil {
		t.Fatal(err)
	}
	for _, sc := range daemonScenarios {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			runScenario(t, sc, h)
		})
	}
}

// startDaemon runs `methodd run` on a copy of handlers.yaml.example whose
// only addition is a connection section trusting the hub's CA, with the
// device connection string in a 0600 file. The test's cleanup stops it with
// SIGTERM (bounded) and prints its output if the test failed.
func startDaemon(t *testing.T, h *hubEnv, bin string) error {
	cs, err := h.device(daemonDevice, "")
	if err != nil {
		return err
	}
	example, err := os.ReadFile(filepath.Join("..", "..", "handlers.yaml.example"))
	if err != nil {
		return fmt.Errorf("the shipped example: %w", err)
	}
	dir := t.TempDir()
	csFile := filepath.Join(dir, "connection-string")
	if err := os.WriteFile(csFile, []byte(cs+"\n"), 0o600); err != nil {
		return err
	}
	config := filepath.Join(dir, "handlers.yaml")
	text := string(example) + "\nconnection:\n  ca_file: " + h.info.CAFile + "\n"
	if err := os.WriteFile(config, []byte(text), 0o600); err != nil {
		return err
	}
	cmd := exec.Command(bin, "run", "--config", config, "--connection-string-file", csFile)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	out := &testkit.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start methodd run: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("methodd run did not exit cleanly on SIGTERM: %v", err)
			}
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			err := <-exited
			t.Errorf("methodd run still running 10 s after SIGTERM (killed: %v)", err)
		}
		if t.Failed() {
			t.Logf("methodd run output:\n%s", out.String())
		}
	})
	return nil
}

// daemonCall calls the daemon's device through the SDK service client.
func daemonCall(ctx context.Context, t *testing.T, h *hubEnv, method, payload string) (event, error) {
	c := call{Device: daemonDevice, MethodName: method, ConnectTimeoutInSeconds: 30}
	if payload != "" {
		c.Payload = json.RawMessage(payload)
	}
	r, err := h.invokeOne(ctx, t, c)
	if err != nil {
		return r, err
	}
	if !r.OK || r.HTTPStatus == nil || *r.HTTPStatus != 200 || r.Status == nil || r.Payload == nil {
		return r, fmt.Errorf("%s: want HTTP 200 with a device status and payload, got %s", method, r.Raw)
	}
	t.Logf("%s %s → status %d payload %s", method, payload, *r.Status, *r.Payload)
	return r, nil
}

// decodePayload decodes the payload of a call result into v.
func decodePayload(r event, v any) error {
	dec := json.NewDecoder(bytes.NewReader([]byte(*r.Payload)))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("payload %s: %w", *r.Payload, err)
	}
	return nil
}

func daemonExpressionMethod(ctx context.Context, t *testing.T, h *hubEnv) error {
	sent := `{"x":[1,"ü",{"y":null}]}`
	r, err := daemonCall(ctx, t, h, "ping", sent)
	if err != nil {
		return err
	}
	if *r.Status != 200 {
		return fmt.Errorf("ping: status %d, want 200: %s", *r.Status, r.Raw)
	}
	var got struct {
		Pong bool            `json:"pong"`
		Time any             `json:"time"`
		Echo json.RawMessage `json:"echo"`
	}
	if err := decodePayload(r, &got); err != nil {
		return err
	}
	if !got.Pong || got.Time == nil || !sameJSON(got.Echo, []byte(sent)) {
		return fmt.Errorf("ping payload %s, want pong true, a time and echo %s", *r.Payload, sent)
	}
	return nil
}

func daemonCommandMethod(ctx context.Context, t *testing.T, h *hubEnv) error {
	r, err := daemonCall(ctx, t, h, "kernel", `{"flag":"-s"}`)
	if err != nil {
		return err
	}
	want := `{"flag":"-s","output":"Linux"}`
	if *r.Status != 200 || !sameJSON([]byte(*r.Payload), []byte(want)) {
		return fmt.Errorf("kernel -s: status %d payload %s, want 200 %s", *r.Status, *r.Payload, want)
	}
	return nil
}

func daemonParamsViolation(ctx context.Context, t *testing.T, h *hubEnv) error {
	r, err := daemonCall(ctx, t, h, "kernel", `{"flag":"-z"}`)
	if err != nil {
		return err
	}
	if *r.Status != 400 || !strings.Contains(*r.Payload, "flag") {
		return fmt.Errorf("kernel with flag -z (not in its enum): status %d payload %s, want 400 naming the field flag", *r.Status, *r.Payload)
	}
	return nil
}

func daemonUnknownMethod(ctx context.Context, t *testing.T, h *hubEnv) error {
	r, err := daemonCall(ctx, t, h, "noSuchMethod", `{}`)
	if err != nil {
		return err
	}
	if *r.Status != 404 {
		return fmt.Errorf("unknown method: status %d, want 404: %s", *r.Status, r.Raw)
	}
	var got struct {
		Methods []json.RawMessage `json:"methods"`
	}
	if err := decodePayload(r, &got); err != nil {
		return err
	}
	listed := map[string]bool{}
	for _, m := range got.Methods {
		var name string
		if json.Unmarshal(m, &name) != nil { // entries may be objects with a name
			var o struct{ Name string }
			_ = json.Unmarshal(m, &o)
			name = o.Name
		}
		listed[name] = true
	}
	for _, want := range []string{"ping", "systemInfo", "kernel", "diskUsage", "wait", "collectDiagnostics"} {
		if !listed[want] {
			return fmt.Errorf("unknown method: the 404 payload's methods %s do not list %s", *r.Payload, want)
		}
	}
	return nil
}

// sameJSON reports whether a and b hold the same JSON value.
func sameJSON(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}
