package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/methodd/methodd/internal/localhub"
)

// binary builds the methodd command once per test process.
type binary struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func (b *binary) get(t *testing.T) string {
	t.Helper()
	b.once.Do(func() {
		if b.dir, b.err = os.MkdirTemp("", "methodd-conformance-"); b.err != nil {
			return
		}
		b.path = filepath.Join(b.dir, "methodd")
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, "go", "build", "-o", b.path, "github.com/methodd/methodd").CombinedOutput()
		if err != nil {
			b.err = fmt.Errorf("go build methodd: %w\n%s", err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

func (b *binary) cleanup() {
	if b.dir != "" {
		os.RemoveAll(b.dir)
	}
}

var methodd binary

func TestMain(m *testing.M) {
	code := m.Run()
	methodd.cleanup()
	os.Exit(code)
}

// cliScenarios: `methodd invoke` → local hub → SDK device (issue 7).
var cliScenarios = []scenario{
	{"invoke_round_trip", 30 * time.Second, invokeRoundTrip},
	{"invoke_device_500_exit_1", 30 * time.Second, invokeDevice500},
	{"invoke_offline_exit_3", 30 * time.Second, invokeOffline},
}

// TestInvokeCLI judges `methodd invoke` by an SDK device.
func TestInvokeCLI(t *testing.T) {
	requireNodeModules(t)
	t.Parallel()
	methodd.get(t)
	h := startHub(t, localhub.Faults{})
	for _, sc := range cliScenarios {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			runScenario(t, sc, h)
		})
	}
}

// runInvoke runs `methodd invoke` with the hub's own service connection
// string (HostName=localhost:PORT) and CA, and returns stdout, stderr and
// the exit code.
func runInvoke(ctx context.Context, t *testing.T, h *hubEnv, args ...string) (stdout, stderr string, code int, err error) {
	full := append([]string{"invoke", "--connection-string", h.info.ServiceConnectionString, "--ca-file", h.info.CAFile}, args...)
	cmd := exec.CommandContext(ctx, methodd.get(t), full...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	runErr := cmd.Run()
	var exit *exec.ExitError
	switch {
	case runErr == nil:
		return out.String(), errb.String(), 0, nil
	case errors.As(runErr, &exit) && ctx.Err() == nil:
		return out.String(), errb.String(), exit.ExitCode(), nil
	default:
		return out.String(), errb.String(), -1, fmt.Errorf("methodd invoke: %w; stderr: %s", runErr, errb.String())
	}
}

// invokeResult is the default (-o json) output line of methodd invoke.
type invokeResult struct {
	Status  int             `json:"status"`
	Payload json.RawMessage `json:"payload"`
}

func parseInvokeOutput(stdout string) (invokeResult, error) {
	var r invokeResult
	line := strings.TrimSpace(stdout)
	if strings.Count(line, "\n") != 0 {
		return r, fmt.Errorf("methodd invoke printed %d lines, want one: %q", strings.Count(line, "\n")+1, stdout)
	}
	if err := json.Unmarshal([]byte(line), &r); err != nil {
		return r, fmt.Errorf("methodd invoke output %q: %w", stdout, err)
	}
	return r, nil
}

func invokeRoundTrip(ctx context.Context, t *testing.T, h *hubEnv) error {
	d, err := h.readyDevice(ctx, t, "cli-rt", "", deviceOptions{})
	if err != nil {
		return err
	}
	p := roundTripPayloads[0]
	stdout, stderr, code, err := runInvoke(ctx, t, h, "cli-rt", "echo", p)
	if err != nil {
		return err
	}
	if code != 0 {
		return fmt.Errorf("exit code %d, want 0; stdout %q stderr %q", code, stdout, stderr)
	}
	r, err := parseInvokeOutput(stdout)
	if err != nil {
		return err
	}
	var problems []string
	if r.Status != 200 {
		problems = append(problems, fmt.Sprintf("status %d, want 200", r.Status))
	}
	if string(r.Payload) != p {
		problems = append(problems, fmt.Sprintf("payload %s, want exactly %s", r.Payload, p))
	}
	if _, err := d.waitFor(ctx, "the exact request bytes", func(e event) bool { return e.Event == "raw" && e.Body != nil && *e.Body == p }); err != nil {
		problems = append(problems, "device: "+err.Error())
	}
	return joinProblems(problems)
}

func invokeDevice500(ctx context.Context, t *testing.T, h *hubEnv) error {
	if _, err := h.readyDevice(ctx, t, "cli-500", "", deviceOptions{}); err != nil {
		return err
	}
	stdout, stderr, code, err := runInvoke(ctx, t, h, "cli-500", "fail500")
	if err != nil {
		return err
	}
	if code != 1 {
		return fmt.Errorf("exit code %d, want 1 (device replied 500); stdout %q stderr %q", code, stdout, stderr)
	}
	r, err := parseInvokeOutput(stdout)
	if err != nil {
		return err
	}
	if r.Status != 500 || string(r.Payload) != `{"error":"boom"}` {
		return fmt.Errorf("output %s, want status 500 payload {\"error\":\"boom\"}", strings.TrimSpace(stdout))
	}
	return nil
}

func invokeOffline(ctx context.Context, t *testing.T, h *hubEnv) error {
	if _, err := h.device("cli-offline", ""); err != nil {
		return err
	}
	stdout, stderr, code, err := runInvoke(ctx, t, h, "cli-offline", "echo", "{}")
	if err != nil {
		return err
	}
	if code != 3 {
		return fmt.Errorf("exit code %d, want 3 (404103 device not online); stdout %q stderr %q", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "404103") {
		return fmt.Errorf("stderr %q does not name errorCode 404103", stderr)
	}
	return nil
}
