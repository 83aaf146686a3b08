package packaging

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// dpkgRoot runs dpkg on a throwaway root: no chroot (the maintainer scripts
// run on this system with DPKG_ROOT set), no log outside the root.
func dpkgRoot(t *testing.T, root string, args ...string) {
	t.Helper()
	run(t, "", "dpkg", append([]string{"--root=" + root, "--force-not-root", "--force-script-chrootless", "--log=/dev/null"}, args...)...)
}

// newRoot makes an empty dpkg database in a temporary directory.
func newRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{"var/lib/dpkg/updates", "var/lib/dpkg/info"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "var/lib/dpkg/status"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

// checkInstall installs the .deb into a throwaway root, checks what the
// package and its postinst put there and that the installed binary works,
// reinstalls it over an edited conffile, then removes (conffiles stay) and
// purges (they go) it.
func checkInstall(t *testing.T, b built) {
	requireTools(t, "systemd-sysusers", "deb-systemd-helper")
	root := newRoot(t)
	dpkgRoot(t, root, "--install", b.deb)

	bin := filepath.Join(root, "usr/bin/methodd")
	conf := filepath.Join(root, "etc/methodd/handlers.yaml")
	run(t, "", bin, "check", conf)
	sameFile(t, conf, filepath.Join(repoRoot, "handlers.yaml.example"))
	sameFile(t, filepath.Join(root, "etc/methodd/methodd.env"), filepath.Join(repoRoot, "systemd/methodd.env.example"))
	checkInstalledUnit(t, root)
	checkGenerated(t, root, bin)
	checkPostinst(t, root)

	// The admin's edits survive a reinstall (an upgrade's configure) and
	// a remove; the credential the admin added goes only with a purge.
	edited := append(readFile(t, conf), "# edited by the admin\n"...)
	writeFile(t, conf, edited, 0o644)
	writeFile(t, filepath.Join(root, "etc/methodd/device-connection-string"), []byte("HostName=h;DeviceId=d;SharedAccessKey=k\n"), 0o600)
	dpkgRoot(t, root, "--install", b.deb)
	if !bytes.Equal(readFile(t, conf), edited) {
		t.Errorf("reinstall replaced the edited %s", conf)
	}
	dpkgRoot(t, root, "--remove", "methodd")
	if !bytes.Equal(readFile(t, conf), edited) {
		t.Errorf("remove changed or removed the edited %s", conf)
	}
	absent(t, root, "usr/bin/methodd", "usr/lib/systemd/system/methodd.service")

	dpkgRoot(t, root, "--purge", "methodd")
	absent(t, root, "etc/methodd", "etc/systemd/system/multi-user.target.wants/methodd.service")
}

// checkInstalledUnit: the packaged unit is the repository's with the
// package's paths, and the documentation it names is installed.
func checkInstalledUnit(t *testing.T, root string) {
	t.Helper()
	got := readLines(t, filepath.Join(root, "usr/lib/systemd/system/methodd.service"))
	want := readLines(t, filepath.Join(repoRoot, "systemd/methodd.service"))
	if len(got) != len(want) {
		t.Fatalf("packaged unit has %d lines, the repository's %d", len(got), len(want))
	}
	changed := map[string]string{}
	for i := range got {
		if got[i] != want[i] {
			changed[want[i]] = got[i]
		}
	}
	for _, line := range got {
		switch {
		case strings.HasPrefix(line, "ExecStart=") && !strings.HasPrefix(line, "ExecStart=/usr/bin/methodd run "):
			t.Errorf("packaged unit: %q, want ExecStart=/usr/bin/methodd run ...", line)
		case strings.HasPrefix(line, "Documentation="):
			doc, ok := strings.CutPrefix(line, "Documentation=file:/usr/share/doc/methodd/")
			if !ok {
				t.Errorf("packaged unit: %q, want a file in /usr/share/doc/methodd", line)
			} else if _, err := os.Stat(filepath.Join(root, "usr/share/doc/methodd", doc)); err != nil {
				t.Errorf("the unit's documentation is not installed: %v", err)
			}
		}
	}
	if len(changed) != 2 {
		t.Errorf("packaged unit differs from the repository's in %d lines, want 2 (ExecStart, Documentation): %q", len(changed), changed)
	}
}

// checkGenerated: the completions and schema are what the installed binary
// prints, and the schema is JSON.
func checkGenerated(t *testing.T, root, bin string) {
	t.Helper()
	for path, args := range map[string][]string{
		"usr/share/bash-completion/completions/methodd":    {"completion", "bash"},
		"usr/share/zsh/vendor-completions/_methodd":        {"completion", "zsh"},
		"usr/share/fish/vendor_completions.d/methodd.fish": {"completion", "fish"},
		"usr/share/methodd/handlers.schema.json":           {"check", "--print-schema"},
	} {
		got, err := os.ReadFile(filepath.Join(root, path))
		if err != nil {
			t.Error(err)
			continue
		}
		if want := run(t, "", bin, args...); string(got) != want || len(got) == 0 {
			t.Errorf("%s (%d bytes) is not what methodd %s prints (%d bytes)", path, len(got), strings.Join(args, " "), len(want))
		}
	}
	schema, _ := os.ReadFile(filepath.Join(root, "usr/share/methodd/handlers.schema.json"))
	if !json.Valid(schema) {
		t.Errorf("handlers.schema.json is not valid JSON")
	}
}

// checkPostinst: postinst created the methodd system user (sysusers) and
// enabled, not started, the unit.
func checkPostinst(t *testing.T, root string) {
	t.Helper()
	passwd, err := os.ReadFile(filepath.Join(root, "etc/passwd"))
	if err != nil {
		t.Fatalf("postinst created no user: %v", err)
	}
	var user string
	for l := range strings.SplitSeq(string(passwd), "\n") {
		if strings.HasPrefix(l, "methodd:") {
			user = l
		}
	}
	if f := strings.Split(user, ":"); len(f) != 7 || f[5] != "/var/lib/methodd" || f[6] != "/usr/sbin/nologin" {
		t.Errorf("methodd user %q: want home /var/lib/methodd, shell /usr/sbin/nologin", user)
	}
	link := filepath.Join(root, "etc/systemd/system/multi-user.target.wants/methodd.service")
	if target, err := os.Readlink(link); err != nil || target != "/usr/lib/systemd/system/methodd.service" {
		t.Errorf("unit not enabled: readlink %s = %q, %v", link, target, err)
	}
}

// sameFile fails the test unless the two files have the same bytes.
func sameFile(t *testing.T, got, want string) {
	t.Helper()
	g, err1 := os.ReadFile(got)
	w, err2 := os.ReadFile(want)
	if err := errors.Join(err1, err2); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(g, w) {
		t.Errorf("%s differs from %s", got, want)
	}
}

// absent fails the test if any of the paths (below root) exists.
func absent(t *testing.T, root string, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Lstat(filepath.Join(root, p)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("/%s: still there (%v), want it gone", p, err)
		}
	}
}

// readFile is a file's bytes.
func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// writeFile writes a file with the given mode, failing the test on error.
func writeFile(t *testing.T, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
}

// readLines is a file's lines.
func readLines(t *testing.T, path string) []string {
	t.Helper()
	return strings.Split(string(readFile(t, path)), "\n")
}
