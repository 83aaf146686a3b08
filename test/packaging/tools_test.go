package packaging

import (
	"bytes"
	"os"
	"os/exec"
	"testing"
)

// optionalEnv, set to 1, lets the tests skip when a Debian tool is missing
// (a machine that is not Debian); scripts/test.sh never sets it.
const optionalEnv = "METHODD_PACKAGING_TOOLS_OPTIONAL"

// requireTools fails the test, or skips it when optionalEnv allows, unless
// every named program is on PATH.
func requireTools(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			if os.Getenv(optionalEnv) == "1" {
				t.Skipf("%s is not installed and %s=1 (scripts/test.sh installs it: apt-get install dpkg lintian)", n, optionalEnv)
			}
			t.Fatalf("%s is not installed (scripts/test.sh installs it; set %s=1 to skip): %v", n, optionalEnv, err)
		}
	}
}

// run runs a program and returns its standard output; it fails the test,
// showing standard error, when the program fails.
func run(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	out, err := command(dir, name, args...)
	if err != nil {
		t.Fatalf("%s %q: %v", name, args, err)
	}
	return out
}

// command runs a program in dir and returns its standard output; the error
// carries the exit status and standard error.
func command(dir, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), &exitError{err: err, stderr: stderr.String()}
	}
	return stdout.String(), nil
}

// exitError is a failed command with what it printed on standard error.
type exitError struct {
	err    error
	stderr string
}

func (e *exitError) Error() string { return e.err.Error() + "\n" + e.stderr }
func (e *exitError) Unwrap() error { return e.err }
