package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runMethodd runs the binary and returns stdout, stderr and the exit code.
func runMethodd(t *testing.T, bin, stdin string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %v: %v", args, err)
	}
	return out.String(), errOut.String(), code
}

// TestEngineSmokeBinary drives the built binary as a user would: check the
// example, call its methods, check an invalid file, call with bad JSON.
func TestEngineSmokeBinary(t *testing.T) {
	bin := buildMethodd(t)
	t.Run("check example", func(t *testing.T) {
		out, errOut, code := runMethodd(t, bin, "", "check", "handlers.yaml.example")
		if code != 0 || !strings.HasPrefix(out, "handlers.yaml.example: OK, 7 methods") || errOut != "" {
			t.Errorf("exit %d, stdout %q, stderr %q; want exit 0, OK and no warnings", code, out, errOut)
		}
		out, _, code = runMethodd(t, bin, "", "check", "--format", "json", "--config", "handlers.yaml.example")
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
			if len(p["methods"].([]any)) != 7 {
				t.Errorf("catalog lists %d methods, want 7", len(p["methods"].([]any)))
			}
		}},
		{"unknown method", "", []string{"reboot"}, 1, 404, nil},
	}
	for _, c := range calls {
		t.Run("call "+c.name, func(t *testing.T) {
			args := append([]string{"call", "--config", "handlers.yaml.example"}, c.args...)
			out, errOut, code := runMethodd(t, bin, c.stdin, args...)
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
		out, _, code := runMethodd(t, bin, "", "check", "--config", "engine/testdata/invalid/misspelled_method_key.yaml")
		want := `engine/testdata/invalid/misspelled_method_key.yaml:6:5: unknown key "timout" in methods.reboot; did you mean "timeout"?`
		if code != 1 || !strings.Contains(out, want) {
			t.Errorf("exit %d, stdout %q; want 1 and %q", code, out, want)
		}
	})
	t.Run("check missing file", func(t *testing.T) {
		_, errOut, code := runMethodd(t, bin, "", "check", "--config", filepath.Join(t.TempDir(), "none.yaml"))
		if code != 1 || !strings.Contains(errOut, "no such file") {
			t.Errorf("exit %d, stderr %q; want 1 and a clear message", code, errOut)
		}
	})
	t.Run("call bad JSON", func(t *testing.T) {
		out, errOut, code := runMethodd(t, bin, "", "call", "--config", "handlers.yaml.example", "ping", `{"a":`)
		if code != 2 || out != "" || !strings.Contains(errOut, "not valid JSON") {
			t.Errorf("exit %d, stdout %q, stderr %q; want 2 and a JSON error", code, out, errOut)
		}
	})
}

// TestCheckAndCallInProcess covers flag handling through run() directly.
func TestCheckAndCallInProcess(t *testing.T) {
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
		{"call @FILE", []string{"call", "--config", "handlers.yaml.example", "ping", "@" + payloadFile}, 0, `"echo":{"x":1}`},
		{"call missing @FILE", []string{"call", "--config", "handlers.yaml.example", "ping", "@" + filepath.Join(dir, "none")}, 2, ""},
		{"call no method", []string{"call", "--config", "handlers.yaml.example"}, 2, ""},
		{"call invalid config", []string{"call", "--config", "engine/testdata/invalid/empty_argv.yaml", "empty"}, 2, ""},
		{"check bad format", []string{"check", "--format", "xml", "handlers.yaml.example"}, 2, ""},
		{"check two files", []string{"check", "a.yaml", "b.yaml"}, 2, ""},
		{"check json invalid", []string{"check", "--format", "json", "engine/testdata/invalid/empty_argv.yaml"}, 1, `"severity":"error"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(context.Background(), c.args, stdio{in: strings.NewReader(""), out: &out, err: &errOut, getenv: func(string) string { return "" }})
			if code != c.code {
				t.Errorf("exit %d, want %d (stdout %q stderr %q)", code, c.code, out.String(), errOut.String())
			}
			if !strings.Contains(out.String(), c.out) {
				t.Errorf("stdout %q lacks %q", out.String(), c.out)
			}
		})
	}
}
