package packaging

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// checkMaintainerScripts: postinst, prerm and postrm are in the control
// archive, executable, POSIX sh with set -e, and parse.
func checkMaintainerScripts(t *testing.T, b built) {
	dir := t.TempDir()
	run(t, "", "dpkg-deb", "--control", b.deb, dir)
	for _, name := range []string{"postinst", "prerm", "postrm"} {
		p := filepath.Join(dir, name)
		fi, err := os.Stat(p)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if fi.Mode().Perm() != 0o755 {
			t.Errorf("%s: mode %v, want 0755", name, fi.Mode().Perm())
		}
		body, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(body), "#!/bin/sh\n") || !strings.Contains(string(body), "\nset -e\n") {
			t.Errorf("%s: want #!/bin/sh and set -e", name)
		}
		if _, err := command("", "sh", "-n", p); err != nil {
			t.Errorf("%s does not parse: %v", name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "preinst")); err == nil {
		t.Errorf("preinst: present, want none (the user is created at configure)")
	}
}
