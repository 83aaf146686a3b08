package cli

import (
	"runtime/debug"
	"testing"
)

// TestVersionLine: the one-line version from build information, with and
// without VCS settings, a dirty tree, a long revision and no version.
func TestVersionLine(t *testing.T) {
	rev := debug.BuildSetting{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"}
	at := debug.BuildSetting{Key: "vcs.time", Value: "2026-11-29T10:00:00Z"}
	cases := []struct {
		name string
		bi   debug.BuildInfo
		want string
	}{
		{"release", debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.3"},
			Settings: []debug.BuildSetting{rev, at, {Key: "vcs.modified", Value: "false"}}},
			"methodd v1.2.3 (rev 0123456789ab, 2026-11-29T10:00:00Z) go1.26.8 linux/amd64"},
		{"dirty tree", debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.3"},
			Settings: []debug.BuildSetting{{Key: "vcs.modified", Value: "true"}, rev, at}},
			"methodd v1.2.3 (rev 0123456789ab+dirty, 2026-11-29T10:00:00Z) go1.26.8 linux/amd64"},
		{"no VCS", debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.3"},
			Settings: []debug.BuildSetting{{Key: "CGO_ENABLED", Value: "0"}}},
			"methodd v1.2.3 go1.26.8 linux/amd64"},
		{"devel", debug.BuildInfo{GoVersion: "go1.26.8"}, "methodd (devel) go1.26.8 linux/amd64"},
		{"(devel) as recorded", debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}},
			"methodd (devel) go1.26.8 linux/amd64"},
		{"short revision, no time", debug.BuildInfo{GoVersion: "go1.26.8",
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc"}}},
			"methodd (devel) (rev abc) go1.26.8 linux/amd64"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := readVersion(&c.bi, "linux", "amd64").String(); got != c.want {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}
