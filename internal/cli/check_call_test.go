package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// example is the shipped example config, as seen from this package.
const example = "../../handlers.yaml.example"

// runCLI runs one methodd command line in-process and returns stdout,
// stderr and the exit code.
func runCLI(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	code := Run(ctx, args, Env{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errOut, Getenv: func(string) string { return "" }})
	return out.String(), errOut.String(), code
}

// TestCheckAndCallExample checks the example, calls each of its methods,
// checks an invalid file and calls with bad JSON, as a user would.
func TestCheckAndCallExample(t *testing.T) {
	t.Run("check example", func(t *testing.T) {
		out, errOut, code := runCLI(t, "", "check", example)
		if code != 0 || !strings.HasPrefix(out, example+": OK, 11 methods") || errOut != "" {
			t.Errorf("exit %d, stdout %q, stderr %q; want exit 0, OK and no warnings", code, out, errOut)
		}
		out, _, code = runCLI(t, "", "check", "--format", "json", "--config", example)
		if code != 0 || strings.TrimSpace(out) != "[]" {
			t.Errorf("json: exit %d, stdout %q; want 0 and []", code, out)
		}
	})
	calls := []struct {
		name, stdin string
		args        []string
		code        int
		status      int
		check       func(t *testing.T, payload map[string]any)
	}{
		{"ping echoes", "", []string{"ping", `{"hello": "gateway"}`}, 0, 200, func(t *testing.T, p map[string]any) {
			if p["pong"] != true || p["echo"].(map[string]any)["hello"] != "gateway" || p["time"] == nil {
				t.Errorf("ping payload %v", p)
			}
		}},
		{"systemInfo", "", []string{"--device-id", "gw-7", "systemInfo"}, 0, 200, func(t *testing.T, p map[string]any) {
			if p["deviceId"] != "gw-7" || p["hostname"] == "" || p["uptimeSeconds"].(float64) <= 0 {
				t.Errorf("systemInfo payload %v", p)
			}
		}},
		{"kernel from stdin", `{"flag": "-s"}`, []string{"kernel", "-"}, 0, 200, func(t *testing.T, p map[string]any) {
			if p["flag"] != "-s" || p["output"] != "Linux" {
				t.Errorf("kernel payload %v", p)
			}
		}},
		{"kernel refuses injection", "", []string{"kernel", `{"flag": "-a; id"}`}, 1, 400, func(t *testing.T, p map[string]any) {
			if p["param"] != "flag" {
				t.Errorf("kernel 400 payload %v", p)
			}
		}},
		{"diskUsage", "", []string{"diskUsage", `{"path": "/"}`}, 0, 200, func(t *testing.T, p map[string]any) {
			if p["mountedOn"] != "/" || p["usedPercent"] == nil {
				t.Errorf("diskUsage payload %v", p)
			}
		}},
		{"diskUsage pattern", "", []string{"diskUsage", `{"path": "relative"}`}, 1, 400, nil},
		{"wait", "", []string{"wait", `{"seconds": 1}`}, 0, 200, func(t *testing.T, p map[string]any) {
			if p["slept"] != 1.0 {
				t.Errorf("wait payload %v", p)
			}
		}},
		{"collectDiagnostics", "", []string{"collectDiagnostics"}, 0, 200, func(t *testing.T, p map[string]any) {
			if p["exitCode"] != 0.0 || !strings.Contains(p["stdout"].(string), "Linux") {
				t.Errorf("collectDiagnostics payload %v", p)
			}
		}},
		{"catalog", "", []string{"catalog"}, 0, 200, func(t *testing.T, p map[string]any) {
			if len(p["methods"].([]any)) != 11 {
				t.Errorf("catalog lists %d methods, want 11", len(p["methods"].([]any)))
			}
		}},
		{"unknown method", "", []string{"noSuchMethod"}, 1, 404, nil},
	}
	for _, c := range calls {
		t.Run("call "+c.name, func(t *testing.T) {
			args := append([]string{"call", "--config", example}, c.args...)
			out, errOut, code := runCLI(t, c.stdin, args...)
			if code != c.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, c.code, errOut)
			}
			if strings.Count(out, "\n") != 1 {
				t.Errorf("want exactly one output line, got %q", out)
			}
			var rep struct {
				Status  int            `json:"status"`
				Payload map[string]any `json:"payload"`
			}
			if err := json.Unmarshal([]byte(out), &rep); err != nil {
				t.Fatalf("output %q: %v", out, err)
			}
			if rep.Status != c.status {
				t.Errorf("status %d, want %d: %s", rep.Status, c.status, out)
			}
			if c.check != nil {
				c.check(t, rep.Payload)
			}
		})
	}
	t.Run("check invalid", func(t *testing.T) {
		out, _, code := runCLI(t, "", "check", "--config", "../../engine/testdata/invalid/misspelled_method_key.yaml")
		want := `../../engine/testdata/invalid/misspelled_method_key.yaml:6:5: unknown key "timout" in methods.reboot; did you mean "timeout"?`
		if code != 1 || !strings.Contains(out, want) {
			t.Errorf("exit %d, stdout %q; want 1 and %q", code, out, want)
		}
	})
	t.Run("check missing file", func(t *testing.T) {
		_, errOut, code := runCLI(t, "", "check", "--config", filepath.Join(t.TempDir(), "none.yaml"))
		if code != 1 || !strings.Contains(errOut, "no such file") {
			t.Errorf("exit %d, stderr %q; want 1 and a clear message", code, errOut)
		}
	})
	t.Run("call bad JSON", func(t *testing.T) {
		out, errOut, code := runCLI(t, "", "call", "--config", example, "ping", `{"a":`)
		if code != 2 || out != "" || !strings.Contains(errOut, "not valid JSON") {
			t.Errorf("exit %d, stdout %q, stderr %q; want 2 and a JSON error", code, out, errOut)
		}
	})
}

// TestCheckAndCallFlags covers flag handling and exit codes.
func TestCheckAndCallFlags(t *testing.T) {
	dir := t.TempDir()
	payloadFile := filepath.Join(dir, "p.json")
	if err := os.WriteFile(payloadFile, []byte(`{"x": 1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		code int
		out  string
	}{
		{"call @FILE", []string{"call", "--config", example, "ping", "@" + payloadFile}, 0, `"echo":{"x":1}`},
		{"call missing @FILE", []string{"call", "--config", example, "ping", "@" + filepath.Join(dir, "none")}, 2, ""},
		{"call no method", []string{"call", "--config", example}, 2, ""},
		{"call invalid config", []string{"call", "--config", "../../engine/testdata/invalid/empty_argv.yaml", "empty"}, 2, ""},
		{"check bad format", []string{"check", "--format", "xml", example}, 2, ""},
		{"check two files", []string{"check", "a.yaml", "b.yaml"}, 2, ""},
		{"check json invalid", []string{"check", "--format", "json", "../../engine/testdata/invalid/empty_argv.yaml"}, 1, `"severity":"error"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := Run(context.Background(), c.args, Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut, Getenv: func(string) string { return "" }})
			if code != c.code {
				t.Errorf("exit %d, want %d (stdout %q stderr %q)", code, c.code, out.String(), errOut.String())
			}
			if !strings.Contains(out.String(), c.out) {
				t.Errorf("stdout %q lacks %q", out.String(), c.out)
			}
		})
	}
}

// TestUnsafePermissionsWarnInCheckAndCallAndRefuseRun: a group-writable
// config is valid for check (exit 0) and call, which warn with the same
// text and fix as run's refusal (exit 1), and say that run refuses it.
func TestUnsafePermissionsWarnInCheckAndCallAndRefuseRun(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "etc")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "handlers.yaml")
	if err := os.WriteFile(path, []byte("version: 1\nmethods:\n  hi:\n    reply: {payload: '\"hi\"'}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o664); err != nil {
		t.Fatal(err)
	}
	problem := path + " (mode -rw-rw-r--, owner uid "
	fix := "is group-writable; it could be changed to run commands as the daemon's user (fix: chmod go-w " + path + ")"

	out, errOut, code := runCLI(t, "", "check", path)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if code != 0 || errOut != "" || len(lines) != 2 {
		t.Fatalf("check: exit %d, stdout %q, stderr %q; want exit 0 and two lines", code, out, errOut)
	}
	if w := lines[0]; !strings.HasPrefix(w, path+": warning: "+problem) || !strings.HasSuffix(w, fix) {
		t.Errorf("check warning %q, want %q ... %q", w, path+": warning: "+problem, fix)
	}
	if want := path + `: OK, 3 methods: catalog, hi, ping; but "methodd run" refuses it until the permissions above are fixed`; lines[1] != want {
		t.Errorf("check summary %q, want %q", lines[1], want)
	}

	out, _, code = runCLI(t, "", "check", "--format", "json", path)
	var diags []map[string]any
	if err := json.Unmarshal([]byte(out), &diags); err != nil || code != 0 || len(diags) != 1 ||
		diags[0]["severity"] != "warning" || !strings.HasSuffix(diags[0]["message"].(string), fix) {
		t.Errorf("check --format json: exit %d, %s (%v); want exit 0 and the one warning", code, out, err)
	}

	out, errOut, code = runCLI(t, "", "call", "--config", path, "hi")
	if code != 0 || out != "{\"status\":200,\"payload\":\"hi\"}\n" || !strings.Contains(errOut, fix) ||
		!strings.Contains(errOut, `"methodd run" refuses this file until its permissions are fixed`) {
		t.Errorf("call: exit %d, stdout %q, stderr %q; want the reply and the warning with its fix", code, out, errOut)
	}

	_, errOut, code = runCLI(t, "", "run", "--config", path, "--connection-string-file", path)
	if code != 1 || !strings.Contains(errOut, "refusing to start") || !strings.Contains(errOut, problem) || !strings.Contains(errOut, fix) {
		t.Errorf("run: exit %d, stderr %q; want 1, refusing with the same text and fix", code, errOut)
	}
}
