//go:build linux

package engine

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
	"gopkg.in/yaml.v3"
)

// limitReply is the payload of a reply for a command stopped by a limit.
type limitReply struct {
	Error    string `json:"error"`
	Limit    string `json:"limit"`
	ExitCode int    `json:"exitCode"`
	Stdout   string `json:"stdout"`
	Stderr   string `json:"stderr"`
}

func decodeLimitReply(t *testing.T, rep Reply) limitReply {
	t.Helper()
	var lr limitReply
	if err := json.Unmarshal(rep.Payload, &lr); err != nil {
		t.Fatalf("decode %s: %v", rep.Payload, err)
	}
	return lr
}

// TestParseLimitsValues checks the accepted forms and what they become.
func TestParseLimitsValues(t *testing.T) {
	cases := []struct {
		name, yaml string
		key        string
		resource   int
		value      uint64
		text       string
	}{
		{"plain bytes", "memory: 67108864", "memory", unix.RLIMIT_AS, 64 << 20, "67108864 bytes"},
		{"MiB", "memory: 64MiB", "memory", unix.RLIMIT_AS, 64 << 20, "64MiB"},
		{"GiB", "memory: 1GiB", "memory", unix.RLIMIT_AS, 1 << 30, "1GiB"},
		{"KiB with space", "output: 512 KiB", "output", unix.RLIMIT_FSIZE, 512 << 10, "512 KiB"},
		{"decimal MB", "output: 100MB", "output", unix.RLIMIT_FSIZE, 100e6, "100MB"},
		{"kB", "output: 2kB", "output", unix.RLIMIT_FSIZE, 2000, "2kB"},
		{"bytes unit", "output: 10B", "output", unix.RLIMIT_FSIZE, 10, "10B"},
		{"cpu seconds", "cpu: 10s", "cpu", unix.RLIMIT_CPU, 10, "10s"},
		{"cpu minutes", "cpu: 2m", "cpu", unix.RLIMIT_CPU, 120, "2m"},
		{"open files", "open_files: 64", "open_files", unix.RLIMIT_NOFILE, 64, "64"},
		{"processes", "processes: 20", "processes", unix.RLIMIT_NPROC, 20, "20"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var doc yaml.Node
			if err := yaml.Unmarshal([]byte(c.yaml), &doc); err != nil {
				t.Fatal(err)
			}
			l := &loader{file: "h.yaml"}
			ls := l.parseLimits(doc.Content[0], "limits")
			if len(l.diags) > 0 || ls == nil {
				t.Fatalf("got diagnostics %v, want none", l.diags)
			}
			got, ok := ls.get(c.key)
			want := rlimit{key: c.key, resource: c.resource, value: c.value, text: c.text}
			if !ok || got != want {
				t.Errorf("got %+v, want %+v", got, want)
			}
		})
	}
}

// TestLimitsMemory: dd allocates its 64 MiB buffer, which RLIMIT_AS at
// 32 MiB refuses; the reply is 500 and names limits.memory. The same
// method with a 1 MiB buffer answers 200.
func TestLimitsMemory(t *testing.T) {
	s := mustParse(t, `
version: 1
methods:
  alloc:
    params:
      bs: {type: string, required: true}
    run: [dd, if=/dev/zero, of=/dev/null, "bs=${params.bs}", count=1]
    limits: {memory: 32MiB}
`)
	rep := call(t, s, "alloc", `{"bs": "64M"}`)
	lr := decodeLimitReply(t, rep)
	if rep.Status != 500 || lr.Limit != "limits.memory" || !strings.Contains(lr.Error, "limits.memory (32MiB) was probably exceeded") {
		t.Fatalf("got %d %s, want 500 naming limits.memory (32MiB)", rep.Status, rep.Payload)
	}
	if lr.ExitCode == 0 || !strings.Contains(lr.Stderr, "memory exhausted") {
		t.Errorf("got exitCode %d stderr %q, want dd's failure", lr.ExitCode, lr.Stderr)
	}
	if rep := call(t, s, "alloc", `{"bs": "1M"}`); rep.Status != 200 {
		t.Errorf("1M buffer: got %d %s, want 200", rep.Status, rep.Payload)
	}
}

// TestLimitsCPU: a busy loop is stopped by SIGXCPU after one second of CPU
// time; the reply names limits.cpu even though the method has a reply
// expression (a limit stop is answered like a timeout).
func TestLimitsCPU(t *testing.T) {
	s := mustParse(t, `
version: 1
methods:
  spin:
    shell: 'while :; do :; done'
    timeout: 60s
    limits: {cpu: 1s}
    reply: {payload: '{"ok": exitCode == 0}'}
`)
	rep := call(t, s, "spin", "")
	lr := decodeLimitReply(t, rep)
	if rep.Status != 500 || lr.Limit != "limits.cpu" || !strings.Contains(lr.Error, "limits.cpu (1s)") || !strings.Contains(lr.Error, "SIGXCPU") {
		t.Fatalf("got %d %s, want 500 naming limits.cpu and SIGXCPU", rep.Status, rep.Payload)
	}
	if lr.ExitCode != 128+int(unix.SIGXCPU) {
		t.Errorf("got exitCode %d, want %d", lr.ExitCode, 128+int(unix.SIGXCPU))
	}
}

// TestLimitsOutput: writing 10000 bytes to a file under a 1 KiB
// RLIMIT_FSIZE gets SIGXFSZ, directly (run) or in a shell's child (shell).
func TestLimitsOutput(t *testing.T) {
	dir := t.TempDir()
	s := mustParse(t, `
version: 1
methods:
  direct:
    run: [dd, if=/dev/zero, "of=`+dir+`/direct", bs=10000, count=1]
    limits: {output: 1KiB}
  shell:
    shell: 'echo before; head -c 10000 /dev/zero > "$DIR/shell"'
    env: {DIR: `+dir+`}
    limits: {output: 1KiB}
  small:
    run: [dd, if=/dev/zero, "of=`+dir+`/small", bs=1000, count=1]
    limits: {output: 1KiB}
`)
	for _, name := range []string{"direct", "shell"} {
		rep := call(t, s, name, "")
		lr := decodeLimitReply(t, rep)
		if rep.Status != 500 || lr.Limit != "limits.output" || !strings.Contains(lr.Error, "limits.output (1KiB)") || !strings.Contains(lr.Error, "SIGXFSZ") {
			t.Errorf("%s: got %d %s, want 500 naming limits.output and SIGXFSZ", name, rep.Status, rep.Payload)
		}
	}
	if rep := call(t, s, "small", ""); rep.Status != 200 {
		t.Errorf("small: got %d %s, want 200", rep.Status, rep.Payload)
	}
	if fi, err := os.Stat(filepath.Join(dir, "direct")); err != nil || fi.Size() != 1024 {
		t.Errorf("direct: got %v %v, want a file of exactly 1024 bytes", fi, err)
	}
}

// TestLimitsOpenFiles: with open_files 5 the shell cannot open fds 3, 4
// and 5 at once; without the limit it can.
func TestLimitsOpenFiles(t *testing.T) {
	s := mustParse(t, `
version: 1
methods:
  limited:
    shell: 'exec 3</dev/null; exec 4</dev/null; exec 5</dev/null; echo opened'
    limits: {open_files: 5}
  free:
    shell: 'exec 3</dev/null; exec 4</dev/null; exec 5</dev/null; echo opened'
`)
	rep := call(t, s, "limited", "")
	var out struct {
		ExitCode int    `json:"exitCode"`
		Stdout   string `json:"stdout"`
		Stderr   string `json:"stderr"`
	}
	if err := json.Unmarshal(rep.Payload, &out); err != nil {
		t.Fatal(err)
	}
	if rep.Status != 500 || out.ExitCode == 0 || strings.Contains(out.Stdout, "opened") || out.Stderr == "" {
		t.Errorf("limited: got %d %s, want 500 with the shell's error", rep.Status, rep.Payload)
	}
	if rep := call(t, s, "free", ""); rep.Status != 200 || !strings.Contains(string(rep.Payload), "opened") {
		t.Errorf("free: got %d %s, want 200 opened", rep.Status, rep.Payload)
	}
}

// TestLimitsTransparent: a command with limits gets exactly the argv
// (after argv[0]), environment and stdin it gets without them.
func TestLimitsTransparent(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	method := func(name, limits string) string {
		return `
  ` + name + `:
    run: [` + exe + `, "a b", "'q' \"qq\"", "$(touch x)", "${payload.v}", "", "--", "-c"]
    env: {` + helperEnv + `: dump}` + limits
	}
	s := mustParse(t, "version: 1\nmethods:"+method("plain", "")+method("limited", `
    limits: {cpu: 30s, open_files: 256, output: 1MiB, processes: 10000}`))
	payload := `{"v": "; echo $HOME \\n\n"}`
	var got [2]dump
	for i, name := range []string{"plain", "limited"} {
		rep := call(t, s, name, payload)
		if rep.Status != 200 {
			t.Fatalf("%s: got %d %.500s, want 200", name, rep.Status, rep.Payload)
		}
		if err := json.Unmarshal(rep.Payload, &got[i]); err != nil {
			t.Fatal(err)
		}
		got[i].Env = slices.DeleteFunc(got[i].Env, func(kv string) bool { return strings.HasPrefix(kv, "METHODD_METHOD=") })
	}
	if !slices.Equal(got[0].Args, got[1].Args) || !slices.Equal(got[0].Env, got[1].Env) || got[0].Stdin != got[1].Stdin {
		t.Errorf("with limits got %+v\nwithout limits %+v; want the same", got[1], got[0])
	}
	if want := []string{"a b", `'q' "qq"`, "$(touch x)", "; echo $HOME \\n\n", "", "--", "-c"}; !slices.Equal(got[1].Args, want) {
		t.Errorf("got args %q, want %q", got[1].Args, want)
	}
	if got[1].Stdin != payload {
		t.Errorf("got stdin %q, want %q", got[1].Stdin, payload)
	}
}

// TestLimitsArgv0: without limits argv[0] is run[0] as written; with them
// it is the resolved program path (the gate execs the path).
func TestLimitsArgv0(t *testing.T) {
	s := mustParse(t, `
version: 1
methods:
  plain:
    run: [sh, -c, 'echo "\"$0\""']
  limited:
    run: [sh, -c, 'echo "\"$0\""']
    limits: {open_files: 64}
`)
	if rep := call(t, s, "plain", ""); string(rep.Payload) != `"sh"` {
		t.Errorf("plain: got %s, want \"sh\"", rep.Payload)
	}
	if rep := call(t, s, "limited", ""); !strings.HasSuffix(string(rep.Payload), `/sh"`) {
		t.Errorf("limited: got %s, want the path of sh", rep.Payload)
	}
}

// TestLimitsApplied reads the limits of the running command from
// /proc/self/limits: soft and hard as set, the hard CPU limit 1s above.
func TestLimitsApplied(t *testing.T) {
	s := mustParse(t, `
version: 1
methods:
  show:
    run: [cat, /proc/self/limits]
    limits: {memory: 64MiB, cpu: 7s, open_files: 33, processes: 44, output: 5KiB}
`)
	rep := call(t, s, "show", "")
	var out struct{ Stdout string }
	if err := json.Unmarshal(rep.Payload, &out); err != nil || rep.Status != 200 {
		t.Fatalf("got %d %s, want 200", rep.Status, rep.Payload)
	}
	want := map[string][2]string{
		"Max cpu time":      {"7", "8"},
		"Max file size":     {"5120", "5120"},
		"Max processes":     {"44", "44"},
		"Max open files":    {"33", "33"},
		"Max address space": {"67108864", "67108864"},
	}
	seen := 0
	for line := range strings.SplitSeq(out.Stdout, "\n") {
		for name, w := range want {
			if !strings.HasPrefix(line, name+" ") {
				continue
			}
			seen++
			if f := strings.Fields(strings.TrimPrefix(line, name)); len(f) < 2 || f[0] != w[0] || f[1] != w[1] {
				t.Errorf("%s: got %q, want soft %s hard %s", name, line, w[0], w[1])
			}
		}
	}
	if seen != len(want) {
		t.Errorf("found %d of %d limits in\n%s", seen, len(want), out.Stdout)
	}
}

// TestLimitsCannotBeSet: a limit the kernel refuses (open files above
// fs.nr_open) is a 500 "cannot start" naming it, and the gate shell is
// gone.
func TestLimitsCannotBeSet(t *testing.T) {
	s := mustParse(t, `
version: 1
methods:
  toomany:
    run: ["true"]
    limits: {open_files: 2000000000}
`)
	rep := call(t, s, "toomany", "")
	if rep.Status != 500 || !strings.Contains(string(rep.Payload), "cannot start") || !strings.Contains(string(rep.Payload), "limits.open_files (2000000000)") {
		t.Fatalf("got %d %s, want 500 cannot start naming limits.open_files", rep.Status, rep.Payload)
	}
}

// TestLimitsTimeoutKillsGroup: with limits the command still leads its own
// process group, so a timeout kills it and its children.
func TestLimitsTimeoutKillsGroup(t *testing.T) {
	s, dir := stubbornSet(t, "limits: {memory: 256MiB, open_files: 64}")
	rep := call(t, s, "stubborn", "")
	if rep.Status != 504 || !strings.Contains(string(rep.Payload), "timed out after 300ms") {
		t.Fatalf("got %d %s, want 504 timed out (not a limit)", rep.Status, rep.Payload)
	}
	wantGroupGone(t, dir)
}
