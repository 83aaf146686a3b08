package packaging

import (
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// wantContents is every path in the .deb's data with its mode and owner, as
// dpkg-deb --contents lists them: fixed ones, and the repository's docs/*.md.
func wantContents(t *testing.T) map[string]string {
	t.Helper()
	want := fixedContents()
	docs, err := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	if err != nil || len(docs) == 0 {
		t.Fatalf("no docs/*.md in the repository (%v)", err)
	}
	for _, d := range docs {
		want["./usr/share/doc/methodd/"+filepath.Base(d)] = "-rw-r--r-- root/root"
	}
	return want
}

// fixedContents is wantContents without the docs.
func fixedContents() map[string]string {
	const dir, file, exe, secret = "drwxr-xr-x root/root", "-rw-r--r-- root/root", "-rwxr-xr-x root/root", "-rw-r----- root/root"
	return map[string]string{
		"./etc/":                      dir,
		"./etc/methodd/":              dir,
		"./etc/methodd/handlers.yaml": file,
		"./etc/methodd/methodd.env":   secret,
		"./usr/":                      dir,
		"./usr/bin/":                  dir,
		"./usr/bin/methodd":           exe,
		"./usr/lib/":                  dir,
		"./usr/lib/systemd/":          dir,
		"./usr/lib/systemd/system/":   dir,
		"./usr/lib/systemd/system/methodd.service":           file,
		"./usr/lib/sysusers.d/":                              dir,
		"./usr/lib/sysusers.d/methodd.conf":                  file,
		"./usr/share/":                                       dir,
		"./usr/share/bash-completion/":                       dir,
		"./usr/share/bash-completion/completions/":           dir,
		"./usr/share/bash-completion/completions/methodd":    file,
		"./usr/share/doc/":                                   dir,
		"./usr/share/doc/methodd/":                           dir,
		"./usr/share/doc/methodd/README.md":                  file,
		"./usr/share/doc/methodd/changelog.gz":               file,
		"./usr/share/doc/methodd/copyright":                  file,
		"./usr/share/fish/":                                  dir,
		"./usr/share/fish/vendor_completions.d/":             dir,
		"./usr/share/fish/vendor_completions.d/methodd.fish": file,
		"./usr/share/lintian/":                               dir,
		"./usr/share/lintian/overrides/":                     dir,
		"./usr/share/lintian/overrides/methodd":              file,
		"./usr/share/methodd/":                               dir,
		"./usr/share/methodd/handlers.schema.json":           file,
		"./usr/share/zsh/":                                   dir,
		"./usr/share/zsh/vendor-completions/":                dir,
		"./usr/share/zsh/vendor-completions/_methodd":        file,
	}
}

// checkContents compares dpkg-deb --contents with wantContents: no path
// missing, none extra, each with its mode and root:root.
func checkContents(t *testing.T, b built) {
	got := map[string]string{}
	for line := range strings.SplitSeq(strings.TrimSpace(run(t, "", "dpkg-deb", "--contents", b.deb)), "\n") {
		// drwxr-xr-x root/root 0 2026-11-29 17:07 ./etc/
		f := strings.Fields(line)
		if len(f) < 6 {
			t.Fatalf("dpkg-deb --contents line %q: want mode owner size date time path", line)
		}
		got[f[5]] = f[0] + " " + f[1]
	}
	want := wantContents(t)
	for _, p := range slices.Sorted(maps.Keys(want)) {
		switch g, ok := got[p]; {
		case !ok:
			t.Errorf("%s: missing from the .deb", p)
		case g != want[p]:
			t.Errorf("%s: got %s, want %s", p, g, want[p])
		}
	}
	for _, p := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[p]; !ok {
			t.Errorf("%s (%s): in the .deb but not expected", p, got[p])
		}
	}
}
