package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConnectionStringInArgvWarns: --connection-string warns (once) that
// argv is visible and names --connection-string-file; the file flag works
// and does not warn; both together are a usage error.
func TestConnectionStringInArgvWarns(t *testing.T) {
	h := startTestHub(t, "dev1")
	csFile := filepath.Join(t.TempDir(), "cs")
	if err := os.WriteFile(csFile, []byte(h.info.ServiceConnectionString+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cs := h.info.ServiceConnectionString
	tests := []struct {
		name string
		args []string
		warn bool
		code int
	}{
		{"inline", []string{"--connection-string", cs}, true, -1},
		{"file", []string{"--connection-string-file", csFile}, false, -1},
		{"both", []string{"--connection-string-file", csFile, "--connection-string", cs}, false, exitUsage},
	}
	for _, cmd := range [][]string{{"invoke"}, {"twin", "show"}, {"query"}, {"job", "list"}} {
		for _, tc := range tests {
			t.Run(strings.Join(cmd, " ")+"/"+tc.name, func(t *testing.T) {
				args := append(append(append([]string{}, cmd...), tc.args...), "--ca-file", h.info.CAFile)
				switch cmd[0] {
				case "invoke":
					args = append(args, "dev1", "ping")
				case "twin":
					args = append(args, "dev1")
				case "query":
					args = append(args, "SELECT * FROM devices")
				}
				var res invokeResult
				res.stdout, res.stderr, res.code = runCLI(t, "", args...)
				if got := strings.Count(res.stderr, "--connection-string-file"); (got > 0) != tc.warn && tc.code == -1 {
					t.Errorf("stderr %q: warning naming --connection-string-file shown %d times, want warn=%v", res.stderr, got, tc.warn)
				}
				if tc.warn && strings.Count(res.stderr, argvWarning) != 1 {
					t.Errorf("stderr %q: want the warning exactly once", res.stderr)
				}
				if tc.code != -1 && res.code != tc.code {
					t.Errorf("exit: got %d, want %d (stderr %s)", res.code, tc.code, res.stderr)
				}
				if tc.name == "file" && strings.Contains(res.stderr, "no hub") {
					t.Errorf("the file's connection string was not used: %s", res.stderr)
				}
			})
		}
	}
}
