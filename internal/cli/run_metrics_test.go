package cli

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunMetricsAddrErrors: a --metrics-addr that is not HOST:PORT is a
// usage error (exit 2) before anything starts; one that cannot be listened
// on fails start-up (exit 1) before the daemon connects.
func TestRunMetricsAddrErrors(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, []byte("version: 1\nmethods: {}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	env := map[string]string{"HOME": dir}
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"no port", []string{"--config", good, "--metrics-addr", "localhost"}, exitUsage},
		{"address in use", []string{"--config", good, "--local", "--hub-dir", filepath.Join(dir, "hub"), "--metrics-addr", busy.Addr().String()}, exitFailure},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := Run(context.Background(), append([]string{"run"}, tc.args...),
				Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Getenv: func(k string) string { return env[k] }})
			if code != tc.code {
				t.Errorf("exit: got %d, want %d (stderr %s)", code, tc.code, errb.String())
			}
			if !strings.Contains(errb.String(), "--metrics-addr") {
				t.Errorf("stderr %q: want it to name --metrics-addr", errb.String())
			}
		})
	}
}
