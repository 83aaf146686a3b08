package daemon

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// installSystemdAnalyze is how scripts/test.sh provides systemd-analyze on
// Debian (the systemd package ships it; no running systemd is needed).
const installSystemdAnalyze = "command -v systemd-analyze || (apt-get update && apt-get install -y systemd)"

// TestSystemdUnitVerifies runs `systemd-analyze verify` on
// systemd/methodd.service with ExecStart's binary pointed at an executable
// that exists here (verify checks it), and fails on any complaint, since
// verify reports unknown keys and bad values as warnings with exit status 0.
func TestSystemdUnitVerifies(t *testing.T) {
	tool, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatalf("systemd-analyze is not installed; scripts/test.sh installs it with: %s", installSystemdAnalyze)
	}
	unit, err := os.ReadFile(filepath.Join("..", "..", "systemd", "methodd.service"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"\nType=notify\n",
		"\nExecStart=/usr/local/bin/methodd run --config /etc/methodd/handlers.yaml",
		"\nExecReload=/bin/kill -HUP $MAINPID\n",
		"\nRestart=on-failure\n",
		"\nWatchdogSec=",
		"\nLoadCredential=device-connection-string:/etc/methodd/device-connection-string\n",
		"\nEnvironmentFile=-/etc/methodd/methodd.env\n",
		"\nNoNewPrivileges=yes\n",
		"\nProtectSystem=strict\n",
	} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("systemd/methodd.service lacks %q", strings.TrimSpace(want))
		}
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(t.TempDir(), "methodd.service")
	local := strings.ReplaceAll(string(unit), "/usr/local/bin/methodd", self)
	if err := os.WriteFile(tmp, []byte(local), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(tool, "verify", "--man=no", tmp).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify %s (ExecStart binary -> %s): %v\n%s", tmp, self, err, out)
	}
}
