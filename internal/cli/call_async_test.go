package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCallRunsAsyncMethodsToTheirEnd: methodd call prints an async
// method's 202 and then the task's final status; the exit code follows
// the task (0 succeeded, 1 failed).
func TestCallRunsAsyncMethodsToTheirEnd(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "handlers.yaml")
	if err := os.WriteFile(cfg, []byte(`version: 1
methods:
  update: {async: true, shell: 'echo installed'}
  broken: {async: true, shell: 'exit 4'}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		method, status string
		code           int
	}{{"update", "succeeded", 0}, {"broken", "failed", 1}} {
		out, errOut, code := runCLI(t, "", "call", "--config", cfg, tc.method)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if code != tc.code || len(lines) != 2 {
			t.Fatalf("%s: exit %d, stdout %q, stderr %q; want exit %d and two lines", tc.method, code, out, errOut, tc.code)
		}
		var first, last struct {
			Status  int
			Payload map[string]any
		}
		if json.Unmarshal([]byte(lines[0]), &first) != nil || first.Status != 202 || first.Payload["status"] != "running" {
			t.Errorf("%s: first line %s, want the 202 running answer", tc.method, lines[0])
		}
		if json.Unmarshal([]byte(lines[1]), &last) != nil || last.Payload["status"] != tc.status || last.Payload["taskId"] != first.Payload["taskId"] {
			t.Errorf("%s: last line %s, want the task %s", tc.method, lines[1], tc.status)
		}
	}
}
