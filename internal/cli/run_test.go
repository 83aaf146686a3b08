package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/methodd/methodd/engine"
	"github.com/methodd/methodd/internal/localhub"
)

// runSmokeOutput is a goroutine-safe stderr sink that signals when a line
// containing want appears.
type runSmokeOutput struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want string
	seen chan struct{}
	once sync.Once
}

func (o *runSmokeOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf.Write(p)
	if strings.Contains(o.buf.String(), o.want) {
		o.once.Do(func() { close(o.seen) })
	}
	return len(p), nil
}

func (o *runSmokeOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// TestRunSmokeBinary does what the README says: methodd run --local with the
// example config in one process, then calls it from another (methodd invoke
// --local, and a plain HTTPS call to the hub's REST API), then SIGTERM → 0.
func TestRunSmokeBinary(t *testing.T) {
	bin := buildMethodd(t)
	dir := filepath.Join(t.TempDir(), "hub")
	cmd := exec.Command(bin, "run", "--local", "--config", "handlers.yaml.example", "--hub-dir", dir)
	out := &runSmokeOutput{want: "call it with: methodd invoke --local --hub-dir " + dir + " dev-device ping", seen: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		if t.Failed() {
			t.Logf("methodd run output:\n%s", out.String())
		}
	})
	select {
	case <-out.seen:
	case err := <-exited:
		t.Fatalf("methodd run exited early (%v):\n%s", err, out)
	case <-time.After(30 * time.Second):
		t.Fatalf("no 'call it with' line within 30s:\n%s", out)
	}

	// From another process, exactly as the printed line says.
	inv := exec.Command(bin, "invoke", "--local", "--hub-dir", dir, "dev-device", "ping", `{"from":"smoke"}`)
	got, err := inv.CombinedOutput()
	if err != nil || !strings.Contains(string(got), `"status":200`) || !strings.Contains(string(got), `"pong":true`) ||
		!strings.Contains(string(got), `"echo":{"from":"smoke"}`) {
		t.Errorf("methodd invoke ping: %v\n%s", err, got)
	}
	// And over plain HTTPS with the service connection string of hub.json.
	info, err := localhub.ReadInfo(dir)
	if err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(info.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	code, body := hubSmokePost(t, info.ServiceConnectionString, pool, `{"methodName":"ping","payload":{"n":1},"responseTimeoutInSeconds":10}`)
	if code != 200 || !strings.Contains(body, `"status":200`) || !strings.Contains(body, `"pong":true`) {
		t.Errorf("HTTPS ping: got %d %s, want 200 with status 200 and pong", code, body)
	}
	if strings.Contains(out.String(), "SharedAccessKey=") || strings.Contains(out.String(), "sig=") {
		t.Error("methodd run logged a secret")
	}

	stopWithSIGTERM(t, cmd, exited, 20*time.Second)
}

// TestRunUsageAndConfigErrors: bad flags and invalid configs exit 2 before
// any connection is attempted.
func TestRunUsageAndConfigErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("version: 1\nmethods:\n  x:\n    reply: {payload: '{'}\n    bogus: 1\n"), 0o600)
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("version: 1\nmethods: {}\n"), 0o600)
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
			code := run(context.Background(), append([]string{"run"}, tc.args...),
				stdio{in: strings.NewReader(""), out: &out, err: &errb, getenv: func(k string) string { return env[k] }})
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
	os.Mkdir(credDir, 0o700)
	os.WriteFile(filepath.Join(credDir, credentialName), []byte("from-cred"), 0o600)
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
			s, src, err := findConnectionString(runFlags{csFile: tc.flag}, engine.Connection{ConnectionStringFile: tc.yaml},
				func(k string) string { return tc.env[k] })
			if err != nil || s != tc.want || src != tc.wantSource {
				t.Errorf("got %q from %q (%v), want %q from %q", s, src, err, tc.want, tc.wantSource)
			}
		})
	}
	secret := "HostName=h;DeviceId=d;SharedAccessKey=c2VjcmV0c2VjcmV0;Bogus=1"
	_, err := resolveIdentity(context.Background(), runFlags{}, engine.Connection{},
		func(k string) string { return map[string]string{envDeviceConnectionString: secret}[k] }, nil)
	if err == nil || strings.Contains(err.Error(), "c2VjcmV0c2VjcmV0") {
		t.Errorf("got %v, want an error without the key", err)
	}
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != exitUsage {
		t.Errorf("got %v, want a usage error", err)
	}
}
