//go:build linux

package cli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/methodd/methodd/engine"
)

// TestRunUsageAndConfigErrors: bad flags and invalid configs exit 2 before
// any connection is attempted.
func TestRunUsageAndConfigErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("version: 1\nmethods:\n  x:\n    reply: {payload: '{'}\n    bogus: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, []byte("version: 1\nmethods: {}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"HOME": dir}
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"unknown flag", []string{"--nope"}, exitUsage, ""},
		{"argument", []string{"extra"}, exitUsage, "unexpected argument"},
		{"bad log format", []string{"--config", good, "--log-format", "xml"}, exitUsage, "--log-format"},
		{"missing config", []string{"--config", filepath.Join(dir, "none.yaml")}, exitUsage, "none.yaml"},
		{"invalid config", []string{"--config", bad}, exitUsage, "bad.yaml:"},
		{"local with file", []string{"--local", "--connection-string-file", good}, exitUsage, "exclude"},
		{"hub-dir without local", []string{"--hub-dir", dir}, exitUsage, "need --local"},
		{"no identity", []string{"--config", good}, exitUsage, "no device identity"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := Run(context.Background(), append([]string{"run"}, tc.args...),
				Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Getenv: func(k string) string { return env[k] }})
			if code != tc.code {
				t.Errorf("exit: got %d, want %d (stderr %s)", code, tc.code, errb.String())
			}
			if !strings.Contains(errb.String(), tc.stderr) {
				t.Errorf("stderr %q: want it to mention %q", errb.String(), tc.stderr)
			}
		})
	}
}

// TestRunIdentityOrder: the first source found wins (design §1), and a
// failure never quotes the connection string.
func TestRunIdentityOrder(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	flagFile := write("flag", "from-flag")
	yamlFile := write("yaml", "from-yaml")
	credDir := filepath.Join(dir, "creds")
	if err := os.Mkdir(credDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(credDir, credentialName), []byte("from-cred"), 0o600); err != nil {
		t.Fatal(err)
	}
	emptyCred := t.TempDir()

	tests := []struct {
		name             string
		flag, yaml       string
		env              map[string]string
		want, wantSource string
	}{
		{"flag first", flagFile, yamlFile, map[string]string{"CREDENTIALS_DIRECTORY": credDir, envDeviceConnectionString: "from-env"}, "from-flag", "--connection-string-file"},
		{"yaml second", "", yamlFile, map[string]string{"CREDENTIALS_DIRECTORY": credDir, envDeviceConnectionString: "from-env"}, "from-yaml", "connection.connection_string_file"},
		{"credential third", "", "", map[string]string{"CREDENTIALS_DIRECTORY": credDir, envDeviceConnectionString: "from-env"}, "from-cred", "$CREDENTIALS_DIRECTORY/" + credentialName},
		{"credential dir without it", "", "", map[string]string{"CREDENTIALS_DIRECTORY": emptyCred, envDeviceConnectionString: "from-env"}, "from-env", "$" + envDeviceConnectionString},
		{"env last", "", "", map[string]string{envDeviceConnectionString: "from-env"}, "from-env", "$" + envDeviceConnectionString},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, src, err := findConnectionString(identityFlags{csFile: tc.flag}, engine.Connection{ConnectionStringFile: tc.yaml},
				func(k string) string { return tc.env[k] })
			if err != nil || s != tc.want || src != tc.wantSource {
				t.Errorf("got %q from %q (%v), want %q from %q", s, src, err, tc.want, tc.wantSource)
			}
		})
	}
	secret := "HostName=h;DeviceId=d;SharedAccessKey=c2VjcmV0c2VjcmV0;Bogus=1"
	_, err := resolveIdentity(context.Background(), identityFlags{}, engine.Connection{},
		func(k string) string { return map[string]string{envDeviceConnectionString: secret}[k] }, nil)
	if err == nil || strings.Contains(err.Error(), "c2VjcmV0c2VjcmV0") {
		t.Errorf("got %v, want an error without the key", err)
	}
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != exitUsage {
		t.Errorf("got %v, want a usage error", err)
	}
}

// TestSIGHUPBecomesAReloadRequest: while run lives, each SIGHUP is a value
// on the daemon's reload channel, never the signal's default action, which
// would end the test process.
func TestSIGHUPBecomesAReloadRequest(t *testing.T) {
	reload, stop := reloadOnSIGHUP()
	defer stop()
	for i := range 3 {
		if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		select {
		case <-reload:
		case <-time.After(10 * time.Second):
			t.Fatalf("SIGHUP %d: no reload request within 10 s", i+1)
		}
	}
}
