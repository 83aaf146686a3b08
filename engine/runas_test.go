//go:build linux

package engine

import (
	"encoding/json"
	"errors"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// fakeAccounts knows nobody (65534) and nogroup, and runs as uid/gid 1000
// with the given effective capabilities.
func fakeAccounts(caps uint64) accounts {
	nobody := &user.User{Uid: "65534", Gid: "65534", Username: "nobody"}
	me := &user.User{Uid: "1000", Gid: "1000", Username: "methodd"}
	return accounts{
		lookupUser: func(s string) (*user.User, error) {
			switch s {
			case "nobody", "65534":
				return nobody, nil
			case "methodd":
				return me, nil
			}
			return nil, user.UnknownUserError(s)
		},
		lookupGroup: func(s string) (*user.Group, error) {
			if s == "nogroup" {
				return &user.Group{Gid: "65534", Name: "nogroup"}, nil
			}
			if s == "broken" {
				return nil, errors.New("/etc/group: permission denied")
			}
			return nil, user.UnknownGroupError(s)
		},
		groupIDs: func(u *user.User) ([]string, error) { return []string{u.Gid, "27"}, nil },
		self:     func() (int, int, uint64, error) { return 1000, 1000, caps, nil },
	}
}

// TestRunAsPrivilege checks the load-time decision with injected accounts:
// without CAP_SETUID/CAP_SETGID only the daemon's own ids are allowed, and
// the refusal names the uid, the missing capabilities and the user.
func TestRunAsPrivilege(t *testing.T) {
	const both = 1<<capSetUID | 1<<capSetGID
	cases := []struct {
		name, src string
		caps      uint64
		want      string // diagnostics; "" = accepted
		wantCred  runAs
	}{
		{"no privilege", "{user: nobody}", 0,
			`h.yaml:1:8: m.run_as.user: the daemon runs as uid 1000 without CAP_SETUID and CAP_SETGID, so it cannot run commands as nobody (uid 65534, gid 65534); run it as root or grant the capabilities (see run_as in docs/handlers.md)`, runAs{}},
		{"setuid only", "{user: nobody}", 1 << capSetUID,
			`h.yaml:1:8: m.run_as.user: the daemon runs as uid 1000 without CAP_SETGID, so it cannot run commands as nobody (uid 65534, gid 65534); run it as root or grant the capabilities (see run_as in docs/handlers.md)`, runAs{}},
		{"own user unprivileged", "{user: methodd}", 0, "",
			runAs{name: "methodd", uid: 1000, gid: 1000, groups: []uint32{1000, 27}, keepGroups: true}},
		{"own user, other group", "{user: methodd, group: nogroup}", 0,
			`h.yaml:1:8: m.run_as.user: the daemon runs as uid 1000 without CAP_SETUID and CAP_SETGID, so it cannot run commands as methodd (uid 1000, gid 65534); run it as root or grant the capabilities (see run_as in docs/handlers.md)`, runAs{}},
		{"capabilities", "{user: nobody}", both, "",
			runAs{name: "nobody", uid: 65534, gid: 65534, groups: []uint32{65534, 27}}},
		{"numeric uid and group", "{user: 65534, group: nogroup}", both, "",
			runAs{name: "nobody", uid: 65534, gid: 65534, groups: []uint32{65534, 27}}},
		{"unknown user", "{user: ghost}", both, `h.yaml:1:8: m.run_as.user: no user "ghost" on this system`, runAs{}},
		{"unknown group", "{user: nobody, group: ghosts}", both, `h.yaml:1:23: m.run_as.group: no group "ghosts" on this system`, runAs{}},
		{"lookup failure", "{user: nobody, group: broken}", both, `h.yaml:1:23: m.run_as.group: cannot look up group "broken": /etc/group: permission denied`, runAs{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var doc yaml.Node
			if err := yaml.Unmarshal([]byte(c.src), &doc); err != nil {
				t.Fatal(err)
			}
			l := &loader{file: "h.yaml"}
			r := l.runAsWith(doc.Content[0], "m.run_as", fakeAccounts(c.caps))
			got := ""
			if len(l.diags) > 0 {
				got = l.diags.Error()
			}
			if got != c.want {
				t.Fatalf("got diagnostics\n%s\nwant\n%s", got, c.want)
			}
			if c.want != "" {
				if r != nil {
					t.Errorf("got %+v with an error, want nil", r)
				}
				return
			}
			if r == nil || r.name != c.wantCred.name || r.uid != c.wantCred.uid || r.gid != c.wantCred.gid ||
				r.keepGroups != c.wantCred.keepGroups || !equalIDs(r.groups, c.wantCred.groups) {
				t.Errorf("got %+v, want %+v", r, c.wantCred)
			}
		})
	}
}

func equalIDs(a, b []uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestRunAsLimitsWithoutSysResource: where root lacks CAP_SYS_RESOURCE
// (a default Docker container), limits on a command run as another user
// cannot be set: the file is refused at load, at the limits key, naming
// the capability.
func TestRunAsLimitsWithoutSysResource(t *testing.T) {
	caps, err := effectiveCaps("/proc/self/status")
	if os.Geteuid() != 0 || err != nil || caps&(1<<capSysResource) != 0 {
		t.Skipf("needs root without CAP_SYS_RESOURCE (euid %d, CapEff %#x, %v)", os.Geteuid(), caps, err)
	}
	src := "version: 1\nmethods:\n  limited:\n    run: [id, -u]\n    run_as: {user: nobody}\n    limits: {open_files: 64}\n"
	_, err = Parse(filepath.Join(t.TempDir(), "handlers.yaml"), []byte(src), testOptions())
	var ds Diagnostics
	if !errors.As(err, &ds) || len(ds) != 1 || ds[0].Line != 6 || ds[0].Path != "methods.limited.limits" || !strings.Contains(ds[0].Message, "CAP_SYS_RESOURCE") {
		t.Fatalf("got %v, want one error at line 6 on methods.limited.limits naming CAP_SYS_RESOURCE", err)
	}
}

// TestCanLimit: limits need CAP_SYS_RESOURCE only for a command of
// another user.
func TestCanLimit(t *testing.T) {
	self := func(uid int, caps uint64) accounts {
		return accounts{self: func() (int, int, uint64, error) { return uid, uid, caps, nil }}
	}
	nobody := &runAs{name: "nobody", uid: 65534}
	for _, tc := range []struct {
		acc  accounts
		want bool // allowed
	}{
		{self(0, 1<<capSysResource), true},
		{self(0, 1<<capSetUID|1<<capSetGID), false},
		{self(65534, 0), true},
	} {
		if got := canLimit(nobody, tc.acc) == ""; got != tc.want {
			t.Errorf("%+v: allowed %v, want %v (%s)", tc.acc, got, tc.want, canLimit(nobody, tc.acc))
		}
	}
}

// TestEffectiveCaps reads CapEff from a status file.
func TestEffectiveCaps(t *testing.T) {
	file := filepath.Join(t.TempDir(), "status")
	if err := os.WriteFile(file, []byte("Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t00000000000000c0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := effectiveCaps(file)
	if err != nil || got != 1<<capSetUID|1<<capSetGID {
		t.Errorf("got %#x %v, want %#x", got, err, 1<<capSetUID|1<<capSetGID)
	}
	if _, err := effectiveCaps("/proc/self/status"); err != nil {
		t.Errorf("/proc/self/status: %v", err)
	}
}

// parseReadable parses src in a directory any user can enter (commands
// run in the file's directory, so nobody must be able to chdir there).
func parseReadable(t *testing.T, src string) *Set {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s, err := Parse(filepath.Join(dir, "handlers.yaml"), []byte(src), testOptions())
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return s
}

// TestRunAsNobody runs id as nobody: uid 65534 and exactly nobody's
// groups, with and without limits (prlimit on another user's process).
func TestRunAsNobody(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skipf("switching to nobody needs root; this test runs as uid %d", os.Geteuid())
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skipf("this system has no user nobody: %v", err)
	}
	gids, err := nobody.GroupIds()
	if err != nil {
		t.Fatal(err)
	}
	s := parseReadable(t, `
version: 1
methods:
  uid:
    run: [id, -u]
    run_as: {user: nobody}
  ids:
    shell: 'echo "$(id -u) $(id -g) $(id -G)"'
    run_as: {user: nobody}
  home:
    shell: 'echo "$HOME"'
    run_as: {user: nobody}
  group:
    run: [id, -g]
    run_as: {user: nobody, group: root}
`)
	if rep := call(t, s, "uid", ""); rep.Status != 200 || string(rep.Payload) != "65534" {
		t.Fatalf("uid: got %d %s, want 200 65534", rep.Status, rep.Payload)
	}
	want := nobody.Uid + " " + nobody.Gid + " " + strings.Join(gids, " ") + "\n"
	sets := map[string]*Set{"ids": s}
	if caps, _ := effectiveCaps("/proc/self/status"); caps&(1<<capSysResource) != 0 {
		sets["limited"] = parseReadable(t, "version: 1\nmethods:\n  limited:\n    shell: 'echo \"$(id -u) $(id -g) $(id -G)\"'\n    run_as: {user: nobody}\n    limits: {memory: 256MiB, open_files: 64}\n")
	} else { // refused at load instead: TestRunAsLimitsWithoutSysResource
		t.Logf("limited: not run: prlimit on another user's process needs CAP_SYS_RESOURCE, which this root lacks (CapEff %#x)", caps)
	}
	for name, s := range sets {
		rep := call(t, s, name, "")
		var out struct{ Stdout string }
		if err := json.Unmarshal(rep.Payload, &out); err != nil || rep.Status != 200 || out.Stdout != want {
			t.Errorf("%s: got %d %s, want stdout %q", name, rep.Status, rep.Payload, want)
		}
	}
	var home struct{ Stdout string }
	if rep := call(t, s, "home", ""); json.Unmarshal(rep.Payload, &home) != nil || home.Stdout != nobody.HomeDir+"\n" {
		t.Errorf("home: got %d %s, want HOME=%s", rep.Status, rep.Payload, nobody.HomeDir)
	}
	if rep := call(t, s, "group", ""); string(rep.Payload) != "0" {
		t.Errorf("group: got %d %s, want 0", rep.Status, rep.Payload)
	}
}
