package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/methodd/methodd/iothub"
)

// outcomeLine is what the where tests read of a fan-out line.
type outcomeLine struct {
	Device  string          `json:"device"`
	Status  *int            `json:"status"`
	Payload json.RawMessage `json:"payload"`
	Error   *struct {
		Code int `json:"code"`
	} `json:"error"`
}

// outcomes decodes fan-out output into "device status payload" or "device
// error code" strings, sorted (lines come in completion order).
func outcomes(t *testing.T, stdout string) []string {
	t.Helper()
	var out []string
	for line := range strings.SplitSeq(strings.TrimSuffix(stdout, "\n"), "\n") {
		if line == "" {
			continue
		}
		var o outcomeLine
		if err := json.Unmarshal([]byte(line), &o); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		switch {
		case o.Status != nil:
			out = append(out, o.Device+" status "+itoa(*o.Status)+" "+string(o.Payload))
		case o.Error != nil:
			out = append(out, o.Device+" error "+itoa(o.Error.Code))
		default:
			t.Errorf("line %q has neither status nor error", line)
		}
	}
	slices.Sort(out)
	return out
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// summaryOf is the fan-out's summary line without its timing.
func summaryOf(stderr string) string {
	for line := range strings.SplitSeq(stderr, "\n") {
		if s, ok := strings.CutPrefix(line, "methodd: "); ok && strings.Contains(s, "calls/s") {
			head, _, _ := strings.Cut(s, ";")
			return head
		}
	}
	return ""
}

// TestInvokeWhere: --where calls exactly the devices the query selects and
// prints what --devices-file listing the same devices prints, with the
// same summary and exit status: one echoes, one replies 500, one is
// offline, and untagged devices are never called. '*' is every device.
func TestInvokeWhere(t *testing.T) {
	h := startTestHub(t, "w-0", "w-1", "w-2", "w-3", "x-0", "x-1")
	tagTwins(t, h, `{"fleet":"w"}`, "w-0", "w-1", "w-2", "w-3")
	tagTwins(t, h, `{"fleet":"x"}`, "x-0")
	startDevices(t, h, []string{"w-0", "w-1", "w-3"}, map[string]int{"w-1": 500})
	x0 := startEchoDevice(t, h, "x-0")
	file := filepath.Join(t.TempDir(), "devices.txt")
	if err := os.WriteFile(file, []byte("w-0\nw-1\nw-2\nw-3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	local := []string{"--local", "--hub-dir", h.dir}

	where := runInvoke(t, h.env(), "", append(local, "--where", "tags.fleet = 'w'", "echo", `{"n": [1, 2]}`)...)
	listed := runInvoke(t, h.env(), "", append(local, "--devices-file", file, "echo", `{"n": [1, 2]}`)...)
	want := []string{
		`w-0 status 200 {"n": [1, 2]}`,
		`w-1 status 500 {"error":"forced"}`,
		`w-2 error 404103`,
		`w-3 status 200 {"n": [1, 2]}`,
	}
	if got := outcomes(t, where.stdout); !slices.Equal(got, want) {
		t.Errorf("--where outcomes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got, want := outcomes(t, where.stdout), outcomes(t, listed.stdout); !slices.Equal(got, want) {
		t.Errorf("--where printed\n%s\n--devices-file printed\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if where.code != exitFailure || listed.code != exitFailure {
		t.Errorf("exit %d with --where, %d with --devices-file; want 1 and 1\nstderr: %s", where.code, listed.code, where.stderr)
	}
	if s := summaryOf(where.stderr); s == "" || s != summaryOf(listed.stderr) {
		t.Errorf("summary %q with --where, %q with --devices-file; want the same", s, summaryOf(listed.stderr))
	}
	x0.mu.Lock()
	called := len(x0.received)
	x0.mu.Unlock()
	if called != 0 {
		t.Errorf("x-0 (tags.fleet x) was called %d times, want 0", called)
	}

	all := runInvoke(t, h.env(), "", append(local, "--where", "*", "--parallel", "2", "echo")...)
	if got := len(outcomes(t, all.stdout)); got != 6 || all.code != exitFailure {
		t.Errorf("--where '*': %d lines, exit %d; want 6 lines and exit 1\nstderr: %s", got, all.code, all.stderr)
	}
	ok := runInvoke(t, h.env(), "", append(local, "--where", "deviceId IN ['w-0', 'w-3']", "echo")...)
	if got := outcomes(t, ok.stdout); ok.code != exitOK || len(got) != 2 {
		t.Errorf("--where deviceId IN: outcomes %q, exit %d; want 2 and exit 0\nstderr: %s", got, ok.code, ok.stderr)
	}
}

// TestInvokeWhereErrors: conflicting targets and bad flags are usage
// errors before any request; a condition the hub refuses, or one nothing
// matches (as an empty devices file), is a usage error; a hub that refuses
// the key is exit 5.
func TestInvokeWhereErrors(t *testing.T) {
	h := startTestHub(t, "e-0")
	startEchoDevice(t, h, "e-0")
	empty := filepath.Join(t.TempDir(), "empty.txt")
	if err := os.WriteFile(empty, []byte("# nothing\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "one.txt")
	if err := os.WriteFile(file, []byte("e-0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cs, err := iothub.ParseServiceConnectionString(h.info.ServiceConnectionString)
	if err != nil {
		t.Fatal(err)
	}
	cs.SharedAccessKey = recognisableKey
	local := []string{"--local", "--hub-dir", h.dir}
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  []string
	}{
		{"with devices file", append(local, "--where", "*", "--devices-file", file, "echo"), 2, []string{"exclude each other"}},
		{"with a device", append(local, "--where", "*", "e-0", "echo", "{}"), 2, []string{"with --where want METHOD [PAYLOAD], got 3"}},
		{"no method", append(local, "--where", "*"), 2, []string{"got 0"}},
		{"empty condition", append(local, "--where", " ", "echo"), 2, []string{"empty condition"}},
		{"pretty output", append(local, "--where", "*", "-o", "pretty", "echo"), 2, []string{"--where prints JSON lines"}},
		{"bad method", append(local, "--where", "*", "bad/method"), 2, []string{"not a valid method name"}},
		{"syntax error", append(local, "--where", "tags.a = ", "echo"), 2, []string{"SELECT * FROM devices WHERE tags.a = ", "position", "400004"}},
		{"no match", append(local, "--where", "tags.a = 'none'", "echo"), 2, []string{"matches no devices"}},
		{"empty devices file", append(local, "--devices-file", empty, "echo"), 2, []string{"lists no devices"}},
		{"wrong key", []string{"--connection-string", cs.String(), "--ca-file", h.info.CAFile, "--where", "*", "echo"}, 5, []string{"401002"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runInvoke(t, h.env(), "", tt.args...)
			if r.code != tt.wantCode {
				t.Errorf("exit %d, want %d\nstderr: %s", r.code, tt.wantCode, r.stderr)
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(r.stderr, s) {
					t.Errorf("stderr %q lacks %q", r.stderr, s)
				}
			}
			if r.stdout != "" {
				t.Errorf("stdout %q, want nothing", r.stdout)
			}
			if strings.Contains(r.stderr, recognisableKey) {
				t.Error("stderr holds the key")
			}
		})
	}
}
