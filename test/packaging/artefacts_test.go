package packaging

import (
	"debug/buildinfo"
	"os"
	"slices"
	"strings"
	"testing"
)

// checkArtefacts: the output directory holds the binary, the .deb and a
// SHA256SUMS that names exactly those two and verifies.
func checkArtefacts(t *testing.T, b built) {
	entries, err := os.ReadDir(b.dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	want := []string{"SHA256SUMS", "methodd_" + b.version + "_amd64.deb", "methodd_" + b.version + "_linux_amd64"}
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Errorf("output directory holds %q, want %q", names, want)
	}
	sums := run(t, b.dir, "sha256sum", "--check", "--strict", "SHA256SUMS")
	if got := strings.Count(sums, ": OK\n"); got != 2 {
		t.Errorf("sha256sum --check verified %d files, want 2:\n%s", got, sums)
	}
	if out := run(t, b.dir, b.binary, "version"); !strings.Contains(out, "linux/amd64") {
		t.Errorf("%s version printed %q, want it to name linux/amd64", b.binary, out)
	}
	// Built as every shipped binary is (and as the RSS figures measure):
	// static, without net/http's HTTP/2.
	info, err := buildinfo.ReadFile(b.binary)
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	for k, v := range map[string]string{"-tags": "nethttpomithttp2", "-trimpath": "true", "CGO_ENABLED": "0"} { // -trimpath leaves -ldflags out
		if settings[k] != v {
			t.Errorf("binary built with %s=%q, want %q", k, settings[k], v)
		}
	}
}
