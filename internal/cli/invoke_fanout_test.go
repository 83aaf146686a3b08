package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/methodd/methodd/internal/testkit"
	"github.com/methodd/methodd/iothub"
)

// fleet registers n devices dev-000..dev-(n-1) on a new hub and writes a
// devices file listing them with a comment and blank lines in between.
func fleet(t testing.TB, n int) (*testHub, []string, string) {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("dev-%03d", i)
	}
	h := startTestHub(t, ids...)
	var b strings.Builder
	b.WriteString("# the fleet\n\n")
	for i, id := range ids {
		b.WriteString(id + "\n")
		if i%50 == 0 {
			b.WriteString("   \n# a comment\n")
		}
	}
	file := filepath.Join(t.TempDir(), "devices.txt")
	if err := os.WriteFile(file, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return h, ids, file
}

// TestInvokeFanOut200 calls 200 devices of the local hub: one is registered
// but offline, one answers 500, the rest echo.
func TestInvokeFanOut200(t *testing.T) {
	h, ids, file := fleet(t, 200)
	offline, failing := ids[17], ids[123]
	var online []string
	for _, id := range ids {
		if id != offline {
			online = append(online, id)
		}
	}
	startDevices(t, h, online, map[string]int{failing: 500})

	r := runInvoke(t, h.env(), "", "--local", "--hub-dir", h.dir, "--devices-file", file, "--parallel", "16", "echo", `{"n": [1, 2]}`)
	if r.code != exitFailure {
		t.Errorf("exit %d, want 1\nstderr: %s", r.code, r.stderr)
	}
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if len(lines) != 200 {
		t.Fatalf("got %d lines, want 200", len(lines))
	}
	seen := map[string]bool{}
	for _, line := range lines {
		var o struct {
			Device  string          `json:"device"`
			Status  *int            `json:"status"`
			Payload json.RawMessage `json:"payload"`
			Error   *struct {
				Code       int    `json:"code"`
				Message    string `json:"message"`
				TrackingID string `json:"trackingId"`
			} `json:"error"`
		}
		if err := json.Unmarshal([]byte(line), &o); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		if seen[o.Device] {
			t.Errorf("device %s printed twice", o.Device)
		}
		seen[o.Device] = true
		switch o.Device {
		case offline:
			if o.Error == nil || o.Error.Code != iothub.CodeDeviceNotOnline || o.Error.TrackingID == "" || o.Status != nil {
				t.Errorf("offline device: got %s, want an error with 404103 and a trackingId", line)
			}
		case failing:
			if o.Status == nil || *o.Status != 500 || string(o.Payload) != `{"error":"forced"}` {
				t.Errorf("failing device: got %s, want status 500", line)
			}
		default:
			if want := fmt.Sprintf(`{"device":%q,"status":200,"payload":{"n": [1, 2]}}`, o.Device); line != want {
				t.Errorf("got %s, want %s", line, want)
			}
		}
	}
	if len(seen) != 200 {
		t.Errorf("got %d distinct devices, want 200", len(seen))
	}
	if want := "200 calls: 198 ok, 1 device-error, 1 unreachable, 0 timeout, 0 error; latency p50 "; !strings.Contains(r.stderr, want) {
		t.Errorf("stderr %q lacks the summary %q", r.stderr, want)
	}
	if strings.Contains(r.stderr, "\r") {
		t.Errorf("stderr is not a terminal but got a progress line: %q", r.stderr)
	}
}

func TestInvokeFanOutExitCodes(t *testing.T) {
	h, ids, _ := fleet(t, 3)
	startDevices(t, h, ids[:2], nil)
	wrong, _ := iothub.ParseServiceConnectionString(h.info.ServiceConnectionString)
	wrong.SharedAccessKey = recognisableKey
	tests := []struct {
		name     string
		env      []string
		stdin    string
		args     []string
		wantCode int
		wantSum  string
	}{
		{"all ok from stdin", nil, ids[0] + "\n" + ids[1] + "\n", []string{"--local", "--hub-dir", h.dir, "--devices-file", "-", "echo"}, 0, "2 calls: 2 ok,"},
		{"one offline", nil, strings.Join(ids, "\n"), []string{"--local", "--hub-dir", h.dir, "--devices-file", "-", "--parallel", "1", "echo", "[]"}, 1, "3 calls: 2 ok, 0 device-error, 1 unreachable,"},
		{"all unauthorised", []string{"IOTHUB_CONNECTION_STRING", wrong.String()}, strings.Join(ids, "\n"), []string{"--ca-file", h.info.CAFile, "--devices-file", "-", "echo"}, 5, "3 calls: 0 ok, 0 device-error, 0 unreachable, 0 timeout, 3 error"},
		{"all offline", nil, ids[2] + "\n", []string{"--local", "--hub-dir", h.dir, "--devices-file", "-", "echo"}, 1, "1 calls: 0 ok, 0 device-error, 1 unreachable"},
		{"pretty refused", nil, ids[0], []string{"--local", "--hub-dir", h.dir, "--devices-file", "-", "-o", "pretty", "echo"}, 2, ""},
		{"bad line", nil, "ok\nbad id\n", []string{"--local", "--hub-dir", h.dir, "--devices-file", "-", "echo"}, 2, ""},
		{"empty list", nil, "# nobody\n", []string{"--local", "--hub-dir", h.dir, "--devices-file", "-", "echo"}, 2, ""},
	}
	secrets := append(secretsIn(t, h.info.ServiceConnectionString), secretsIn(t, wrong.String())...)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runInvoke(t, h.env(tt.env...), tt.stdin, tt.args...)
			if r.code != tt.wantCode || !strings.Contains(r.stderr, tt.wantSum) {
				t.Errorf("exit %d stderr %q, want %d and %q", r.code, r.stderr, tt.wantCode, tt.wantSum)
			}
			assertNoSecrets(t, r, secrets)
		})
	}
}

// benchmarkFanOut measures fan-out calls per second through the command
// against the local hub with 200 in-process echo devices. Each run of the
// command calls every device reps times, so reps 1 includes the cost of
// opening the connections (TLS handshakes) in every 200 calls and larger
// reps approach the steady state. Everything runs in this one process.
func benchmarkFanOut(b *testing.B, parallel, reps int) {
	h, ids, _ := fleet(b, 200)
	startDevices(b, h, ids, nil)
	list := strings.Repeat(strings.Join(ids, "\n")+"\n", reps)
	file := filepath.Join(b.TempDir(), "devices.txt")
	if err := os.WriteFile(file, []byte(list), 0o600); err != nil {
		b.Fatal(err)
	}
	args := []string{"invoke", "--local", "--hub-dir", h.dir, "--devices-file", file, "--parallel", fmt.Sprint(parallel), "echo", `{"bench":true}`}
	s := Env{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: io.Discard, Getenv: h.env()}
	cpu0 := testkit.ProcessCPU()
	for b.Loop() {
		if code := Run(b.Context(), args, s); code != 0 {
			b.Fatalf("exit %d", code)
		}
	}
	calls := float64(b.N * len(ids) * reps)
	b.ReportMetric(calls/b.Elapsed().Seconds(), "calls/s")
	// CPU per call of the whole process (client, hub and devices): less
	// sensitive than calls/s to other load on the machine.
	b.ReportMetric(float64((testkit.ProcessCPU()-cpu0).Microseconds())/calls, "cpu-µs/call")
}

func BenchmarkFanOut16(b *testing.B)     { benchmarkFanOut(b, 16, 10) }
func BenchmarkFanOut64(b *testing.B)     { benchmarkFanOut(b, 64, 10) }
func BenchmarkFanOutCold16(b *testing.B) { benchmarkFanOut(b, 16, 1) }
func BenchmarkFanOutCold64(b *testing.B) { benchmarkFanOut(b, 64, 1) }
