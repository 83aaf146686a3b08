package engine

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

// TestCallLogLine: one Info line per call with method, requestId, status,
// durationMs and (for commands) exitCode; payloads only at Debug.
func TestCallLogLine(t *testing.T) {
	var buf bytes.Buffer
	opts := testOptions()
	opts.Logger = slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	s := mustParse(t, "version: 1\nmethods:\n  fail: {shell: 'exit 3'}\n", opts)
	call(t, s, "fail", `{"secret":"hunter2"}`)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("got %d log lines, want 1: %q", len(lines), buf.String())
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{"msg": "call", "method": "fail", "requestId": "7", "deviceId": "dev-1", "status": 500.0, "exitCode": 3.0} {
		if rec[k] != want {
			t.Errorf("log %s: got %v, want %v", k, rec[k], want)
		}
	}
	if _, ok := rec["durationMs"]; !ok || strings.Contains(lines[0], "hunter2") {
		t.Errorf("log line lacks durationMs or leaks the payload at Info: %s", lines[0])
	}
}
