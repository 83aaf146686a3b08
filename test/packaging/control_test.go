package packaging

import (
	"strings"
	"testing"
)

// checkControl: the control fields a user and apt see, and the conffiles.
func checkControl(t *testing.T, b built) {
	for _, c := range []struct{ field, want string }{
		{"Package", "methodd"},
		{"Version", b.version},
		{"Architecture", "amd64"},
		{"Section", "net"},
		{"Priority", "optional"},
		{"Homepage", "https://github.com/methodd/methodd"},
		// A static binary: no library, and systemd is not required to
		// install it (containers, throwaway roots).
		{"Depends", ""},
	} {
		if got := field(t, b.deb, c.field); got != c.want {
			t.Errorf("%s: got %q, want %q", c.field, got, c.want)
		}
	}
	if m := field(t, b.deb, "Maintainer"); !strings.Contains(m, "<") || !strings.HasSuffix(m, ">") {
		t.Errorf("Maintainer %q: want Name <address>", m)
	}
	if d := field(t, b.deb, "Description"); !strings.HasPrefix(d, "Azure IoT Hub direct methods") || !strings.Contains(d, "device-connection-string") {
		t.Errorf("Description %q: want the synopsis and how to start the service", d)
	}
	if _, err := command("", "dpkg", "--validate-version", b.version); err != nil {
		t.Errorf("version %q is not a valid Debian version: %v", b.version, err)
	}
	if strings.Contains(b.version, "-") {
		t.Errorf("version %q has a Debian revision; the package is native (changelog.gz)", b.version)
	}
	got := strings.Fields(run(t, "", "dpkg-deb", "--info", b.deb, "conffiles"))
	want := []string{"/etc/methodd/handlers.yaml", "/etc/methodd/methodd.env"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("conffiles: got %q, want %q", got, want)
	}
}

// field is one control field of the .deb, "" when it has none.
func field(t *testing.T, deb, name string) string {
	t.Helper()
	return strings.TrimSpace(run(t, "", "dpkg-deb", "--field", deb, name))
}
