//go:build linux

package cli

import (
	"context"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/methodd/methodd/internal/localhub"
	"github.com/methodd/methodd/internal/testkit"
)

const (
	secretHelperEnv = "METHODD_TEST_SECRET_DAEMON" // the hub dir: run as the helper daemon
	secretKey       = "c2VjcmV0LWtleS1mb3ItdGhlLXRlc3Q="
	nobody          = 65534
)

// TestSecretDaemonHelper is not a test: TestCommandCannotReadDaemonSecrets
// runs the test binary as nobody with this test selected, and it then runs
// `methodd run --local` until SIGTERM.
func TestSecretDaemonHelper(t *testing.T) {
	dir := os.Getenv(secretHelperEnv)
	if dir == "" {
		t.Skip("helper process only")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	Run(ctx, []string{"run", "--local", "--hub-dir", filepath.Join(dir, "hub"), "--config", filepath.Join(dir, "handlers.yaml")},
		Env{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: os.Stderr, Getenv: os.Getenv})
}

// TestCommandCannotReadDaemonSecrets: a daemon running as nobody with the
// connection string in its environment; its command, running as nobody
// too, reads /proc/<daemon>/environ, mem and cmdline: environ and mem are
// refused (the daemon is not dumpable).
func TestCommandCannotReadDaemonSecrets(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the daemon as nobody")
	}
	dir, err := os.MkdirTemp("", "methodd-secrets-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "cli.test")
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	must(t, os.WriteFile(bin, b, 0o755))
	must(t, os.Chmod(dir, 0o755))
	must(t, os.Mkdir(filepath.Join(dir, "hub"), 0o700))
	must(t, os.Chown(filepath.Join(dir, "hub"), nobody, nobody))
	must(t, os.WriteFile(filepath.Join(dir, "handlers.yaml"), []byte(`version: 1
methods:
  peek:
    shell: 'for f in environ mem cmdline; do if head -c 4096 /proc/$PPID/$f >/dev/null 2>&1; then echo "$f:readable"; cat /proc/$PPID/$f | tr "\0" " "; echo; else echo "$f:refused"; fi; done'
`), 0o644))

	cmd := exec.Command(bin, "-test.run=^TestSecretDaemonHelper$")
	cmd.Env = []string{secretHelperEnv + "=" + dir, "PATH=/usr/bin:/bin", "HOME=" + dir,
		envDeviceConnectionString + "=HostName=example.azure-devices.net;DeviceId=gw;SharedAccessKey=" + secretKey}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	cmd.Stderr = testWriter{t}
	must(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	hubDir := filepath.Join(dir, "hub")
	testkit.Eventually(t, 30*time.Second, "the helper daemon's local hub", func() bool {
		_, err := localhub.ReadInfo(hubDir)
		return err == nil
	})
	var res invokeResult
	testkit.Eventually(t, 30*time.Second, "the helper daemon to answer peek", func() bool {
		res = runInvoke(t, func(string) string { return "" }, "", "--local", "--hub-dir", hubDir, defaultHubDevice, "peek")
		return res.code == 0
	})
	for _, want := range []string{"environ:refused", "mem:refused"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("command output %q: want %q", res.stdout, want)
		}
	}
	if strings.Contains(res.stdout, secretKey) {
		t.Errorf("the command read the daemon's key: %s", res.stdout)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// testWriter logs what a helper process writes.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
