package packaging

import (
	"strings"
	"testing"
)

// checkLintian: lintian finds nothing at error level (overrides shipped
// in the package, with their reasons, count as decided). Warnings are
// logged: the known one is no-manual-page.
func checkLintian(t *testing.T, b built) {
	out, err := command("", "lintian", "--fail-on", "error", "--no-tag-display-limit", b.deb)
	for line := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
		switch {
		case strings.HasPrefix(line, "E: "):
			t.Errorf("lintian error: %s", line)
		case line != "":
			t.Logf("lintian: %s", line)
		}
	}
	if err != nil {
		t.Errorf("lintian --fail-on error: %v\n%s", err, out)
	}
}
