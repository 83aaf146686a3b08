//go:build linux

package engine

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/methodd/methodd/internal/testkit"
)

// cgroupMode skips t when commands cannot get their own cgroup here.
func cgroupMode(t *testing.T) {
	t.Helper()
	j := newJail(ownCgroupDir())
	if j == nil {
		t.Skip("no writable cgroup v2 cgroup: tree mode only")
	}
	j.close()
}

// TestEscapeKilledAtTimeout: processes that left the group (setsid, a
// double fork, nohup, a daemon's fork+setsid+fork, one that closed its
// output) while the command runs are killed at the timeout, and the 504
// reply says so. In tree mode the orphaned ones are out of reach.
func TestEscapeKilledAtTimeout(t *testing.T) {
	cases := []struct {
		name, script string
		orphaned     bool // reachable in cgroup mode only
	}{
		{"setsid", `setsid sleep 1000 & echo $! > "$DIR/pid"`, false},
		{"double fork", `(setsid sleep 1000 & echo $! > "$DIR/pid") &`, true},
		{"nohup setsid", `nohup setsid sleep 1000 >/dev/null 2>&1 & echo $! > "$DIR/pid"`, false},
		{"daemon", `sh -c 'setsid sh -c "sleep 1000 & echo \$! > \"$DIR/pid\"" &'`, true},
		{"closed output", `setsid sh -c 'exec >&- 2>&- <&-; echo $$ > "$DIR/pid"; exec sleep 1000' &`, false},
	}
	for _, mode := range []string{"cgroup", "tree"} {
		for _, tc := range cases {
			t.Run(mode+"/"+tc.name, func(t *testing.T) {
				escapeAtTimeout(t, mode == "tree", tc.script, tc.orphaned)
			})
		}
	}
}

func escapeAtTimeout(t *testing.T, tree bool, script string, orphaned bool) {
	if !tree {
		cgroupMode(t)
	} else if orphaned {
		t.Skip("an orphaned escape is out of reach in tree mode")
	}
	{
		{
			dir := t.TempDir()
			opts := testOptions()
			opts.KillGrace = 100 * time.Millisecond
			opts.DrainTimeout = 100 * time.Millisecond
			s := mustParse(t, `
version: 1
methods:
  m:
    shell: '`+yamlScript(script)+` while [ ! -s "$DIR/pid" ]; do sleep 0.01; done; sleep 0.1; sleep 100'
    env: {DIR: `+dir+`}
    timeout: 500ms
`, opts)
			s.runner.noCgroup = tree
			rep := call(t, s, "m", "")
			pid := readPID(t, filepath.Join(dir, "pid"))
			t.Cleanup(func() { _ = killPID(pid) })
			if rep.Status != 504 || !strings.Contains(string(rep.Payload), "left its process group killed") {
				t.Errorf("got %d %s, want 504 saying the escaped process was killed", rep.Status, rep.Payload)
			}
			testkit.Eventually(t, 5*time.Second, "escaped pid "+strconv.Itoa(pid)+" to be gone", func() bool { return gone(pid) })
		}
	}
}

// TestEscapeKilledAfterExit (cgroup mode): a command that exits normally
// leaving processes outside its group (setsid, double fork, daemon-style)
// does not leave them running, and the default reply counts them.
func TestEscapeKilledAfterExit(t *testing.T) {
	cgroupMode(t)
	cases := map[string]string{
		"setsid":      `setsid sleep 1000 & echo $! > "$DIR/pid"`,
		"double fork": `(setsid sleep 1000 & echo $! > "$DIR/pid") &`,
		"daemon":      `sh -c 'setsid sh -c "sleep 1000 & echo \$! > \"$DIR/pid\"" &'`,
	}
	for name, script := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			opts := testOptions()
			opts.DrainTimeout = 100 * time.Millisecond
			s := mustParse(t, `
version: 1
methods:
  m:
    shell: '`+yamlScript(script)+` while [ ! -s "$DIR/pid" ]; do sleep 0.01; done; sleep 0.1; echo done'
    env: {DIR: `+dir+`}
`, opts)
			rep := call(t, s, "m", "")
			pid := readPID(t, filepath.Join(dir, "pid"))
			t.Cleanup(func() { _ = killPID(pid) })
			if rep.Status != 200 || !strings.Contains(string(rep.Payload), `"escapedKilled":1`) {
				t.Errorf("got %d %s, want 200 with \"escapedKilled\":1", rep.Status, rep.Payload)
			}
			testkit.Eventually(t, 5*time.Second, "escaped pid "+strconv.Itoa(pid)+" to be gone", func() bool { return gone(pid) })
		})
	}
}

// yamlScript quotes a shell list for a single-quoted YAML scalar and ends
// it so that another command may follow.
func yamlScript(script string) string {
	if !strings.HasSuffix(script, "&") {
		script += ";"
	}
	return strings.ReplaceAll(script, "'", "''")
}
