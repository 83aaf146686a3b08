package cli

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestInvokeLocalDeadHub: after its hub stopped (hub.json stays), invoke
// --local says the hub is not running, naming its last pid, and exits 5,
// instead of reporting a refused connection.
func TestInvokeLocalDeadHub(t *testing.T) {
	h := startTestHub(t, "dev1")
	if err := h.hub.Close(); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := runCLI(t, "", "invoke", "--local", "--hub-dir", h.dir, "dev1", "ping")
	if code != exitHubError || !strings.Contains(errOut, "not running") || !strings.Contains(errOut, "pid "+strconv.Itoa(os.Getpid())) ||
		!strings.Contains(errOut, "methodd hub --dir "+h.dir) {
		t.Fatalf("exit %d, stderr %q; want %d and the hub not running, its pid and how to start it", code, errOut, exitHubError)
	}
}
