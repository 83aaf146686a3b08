//go:build linux

package engine

import (
	"bufio"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/methodd/methodd/internal/logkey"
	"github.com/methodd/methodd/internal/testkit"
)

// detachLog is a Set's log as JSON lines, read back by key.
type detachLog struct{ buf testkit.SyncBuffer }

func (l *detachLog) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(&l.buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// find returns the first record holding every key of want with that value
// (compared as fmt.Sprint of the decoded JSON value; "" only asks that the
// key be present).
func (l *detachLog) find(want map[string]string) (map[string]any, bool) {
	sc := bufio.NewScanner(strings.NewReader(l.buf.String()))
	for sc.Scan() {
		var rec map[string]any
		if json.Unmarshal(sc.Bytes(), &rec) != nil {
			continue
		}
		ok := true
		for k, v := range want {
			got, has := rec[k]
			if !has || v != "" && fmt.Sprint(got) != v {
				ok = false
				break
			}
		}
		if ok {
			return rec, true
		}
	}
	return nil, false
}

// waitLog waits for a record holding want.
func (l *detachLog) waitLog(t *testing.T, want map[string]string) map[string]any {
	t.Helper()
	var rec map[string]any
	testkit.Eventually(t, 10*time.Second, fmt.Sprintf("a log record with %v", want), func() bool {
		var ok bool
		rec, ok = l.find(want)
		return ok
	})
	return rec
}

// procStat returns the process group and session of pid from
// /proc/PID/stat.
func procStat(t *testing.T, pid string) (pgrp, sid string) {
	t.Helper()
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	// pid (comm) state ppid pgrp session ...; comm may hold spaces.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return f[2], f[3]
}

// killOnCleanup kills the process whose pid is in file, if the test left
// it running.
func killOnCleanup(t *testing.T, file string) {
	t.Cleanup(func() {
		if b, err := os.ReadFile(file); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
}

// TestDetachRepliesThenStartsInItsOwnSession: the call is answered 202
// "scheduled" at once and starts nothing; After starts the command once,
// however often it is called, in a session and process group of its own,
// with stdin on /dev/null and the payload in METHODD_PAYLOAD, and its exit
// status is logged when it ends.
func TestDetachRepliesThenStartsInItsOwnSession(t *testing.T) {
	dir := t.TempDir()
	var log detachLog
	opts := testOptions()
	opts.Logger = log.logger()
	s := mustParse(t, fmt.Sprintf(`version: 1
methods:
  later:
    detach: true
    shell: |
      d='%s'
      echo $$ >> "$d/starts"
      cat > "$d/stdin"
      echo $$ > "$d/pid.tmp" && mv "$d/pid.tmp" "$d/pid"
      while [ ! -e "$d/go" ]; do sleep 0.02; done
      printf '%%s' "$METHODD_PAYLOAD" > "$d/done.tmp" && mv "$d/done.tmp" "$d/done"
      exit 3
`, dir), opts)
	killOnCleanup(t, filepath.Join(dir, "pid"))
	t.Cleanup(func() { _ = os.WriteFile(filepath.Join(dir, "go"), nil, 0o600) })

	rep := call(t, s, "later", `{"at":"now"}`)
	if rep.Status != 202 || compactJSON(t, string(rep.Payload)) != `{"method":"later","status":"scheduled"}` {
		t.Fatalf("got %d %s, want 202 {\"status\":\"scheduled\",\"method\":\"later\"}", rep.Status, rep.Payload)
	}
	if rep.After == nil {
		t.Fatal("reply has no After: nothing would start the command")
	}
	if fileExists(filepath.Join(dir, "starts")) {
		t.Fatal("the command started before the reply was delivered (After not yet run)")
	}

	rep.After()
	rep.After() // a second delivery (a duplicate request id) starts nothing
	testkit.Eventually(t, 10*time.Second, "the command to start", func() bool { return fileExists(filepath.Join(dir, "pid")) })
	b, _ := os.ReadFile(filepath.Join(dir, "pid"))
	pid := strings.TrimSpace(string(b))
	pgrp, sid := procStat(t, pid)
	_, ourSID := procStat(t, strconv.Itoa(os.Getpid()))
	if sid != pid || pgrp != pid || sid == ourSID {
		t.Errorf("command %s: process group %s, session %s (ours %s); want a session and group of its own", pid, pgrp, sid, ourSID)
	}
	if in, _ := os.ReadFile(filepath.Join(dir, "stdin")); len(in) != 0 {
		t.Errorf("command read %q on stdin, want nothing (/dev/null)", in)
	}

	if err := os.WriteFile(filepath.Join(dir, "go"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "the command to finish", func() bool { return fileExists(filepath.Join(dir, "done")) })
	if got, _ := os.ReadFile(filepath.Join(dir, "done")); string(got) != `{"at":"now"}` {
		t.Errorf("METHODD_PAYLOAD: got %q, want the payload", got)
	}
	log.waitLog(t, map[string]string{logkey.Method: "later", logkey.PID: pid, logkey.ExitCode: "3", logkey.DurationMs: ""})
	if starts, _ := os.ReadFile(filepath.Join(dir, "starts")); strings.Count(string(starts), "\n") != 1 {
		t.Errorf("command started %d times, want once", strings.Count(string(starts), "\n"))
	}
}

// TestDetachStartFailureIsLogged: a command that cannot start once the
// reply is out is logged as an error naming the method and the reason.
func TestDetachStartFailureIsLogged(t *testing.T) {
	dir := t.TempDir()
	prog := filepath.Join(dir, "prog")
	if err := os.WriteFile(prog, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	var log detachLog
	opts := testOptions()
	opts.Logger = log.logger()
	s := mustParse(t, fmt.Sprintf("version: 1\nmethods:\n  gone:\n    detach: true\n    run: [%q]\n", prog), opts)
	rep := call(t, s, "gone", `null`)
	if rep.Status != 202 || rep.After == nil {
		t.Fatalf("got %d %s (After set: %v), want 202 scheduled with an After", rep.Status, rep.Payload, rep.After != nil)
	}
	if err := os.Remove(prog); err != nil {
		t.Fatal(err)
	}
	rep.After()
	log.waitLog(t, map[string]string{"level": "ERROR", logkey.Method: "gone", logkey.RequestID: "7", logkey.Err: ""})
}

// fakeSystemdRun installs a systemd-run in dir/bin that records its
// arguments (NUL-separated) in dir/argv and exits with code, printing msg
// on stderr; it returns Options under which the daemon looks as if it ran
// under systemd (INVOCATION_ID set, that systemd-run first in PATH).
func fakeSystemdRun(t *testing.T, dir string, code int, msg string, log *detachLog) Options {
	t.Helper()
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf("#!/bin/sh\nprintf '%%s\\0' \"$@\" > '%s/argv.tmp' && mv '%s/argv.tmp' '%s/argv'\necho '%s' >&2\nexit %d\n",
		dir, dir, dir, msg, code)
	if err := os.WriteFile(filepath.Join(bin, "systemd-run"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	opts := testOptions()
	opts.Logger = log.logger()
	opts.Environ = func() []string {
		return []string{"PATH=" + bin + ":/usr/bin:/bin", "INVOCATION_ID=0123456789abcdef", "SECRET=s3cr3t"}
	}
	return opts
}

// TestDetachUnderSystemd: under systemd the command is handed to
// systemd-run as a transient unit once the reply is out, with its
// environment as --setenv and nothing of the daemon's; the unit is logged.
func TestDetachUnderSystemd(t *testing.T) {
	dir := t.TempDir()
	var log detachLog
	s := mustParse(t, `version: 1
methods:
  reboot:
    detach: true
    params:
      when: {type: string, required: true}
    run: [echo, "now ${params.when}"]
`, fakeSystemdRun(t, dir, 0, "", &log))
	rep := call(t, s, "reboot", `{"when":"+1"}`)
	if rep.Status != 202 || rep.After == nil {
		t.Fatalf("got %d %s, want 202 scheduled with an After", rep.Status, rep.Payload)
	}
	if fileExists(filepath.Join(dir, "argv")) {
		t.Fatal("systemd-run ran before the reply was delivered")
	}
	rep.After()
	b, err := os.ReadFile(filepath.Join(dir, "argv"))
	if err != nil {
		t.Fatalf("systemd-run did not run by the time After returned: %v", err)
	}
	argv := strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
	unit := regexp.MustCompile(`^--unit=methodd-detached-reboot-7-[0-9a-f]{8}\.service$`)
	checks := []struct {
		what string
		ok   bool
	}{
		{"options first", slices.Equal(argv[:4], []string{"--no-block", "--collect", "--quiet", "--no-ask-password"})},
		{"--unit=methodd-detached-reboot-7-RANDOM.service", slices.ContainsFunc(argv, unit.MatchString)},
		{"--working-directory=the config's directory", slices.Contains(argv, "--working-directory="+s.dir)},
		{"--setenv=METHODD_METHOD=reboot", slices.Contains(argv, "--setenv=METHODD_METHOD=reboot")},
		{"--setenv=METHODD_PARAM_WHEN=+1", slices.Contains(argv, "--setenv=METHODD_PARAM_WHEN=+1")},
		{`--setenv=METHODD_PAYLOAD={"when":"+1"}`, slices.Contains(argv, `--setenv=METHODD_PAYLOAD={"when":"+1"}`)},
		{"no daemon secret", !strings.Contains(string(b), "s3cr3t")},
		{"-- ECHO 'now +1' last", len(argv) > 3 && argv[len(argv)-3] == "--" && filepath.Base(argv[len(argv)-2]) == "echo" && argv[len(argv)-1] == "now +1"},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("systemd-run argv: want %s; got %q", c.what, argv)
		}
	}
	log.waitLog(t, map[string]string{logkey.Method: "reboot", logkey.Unit: strings.TrimPrefix(argv[slices.IndexFunc(argv, unit.MatchString)], "--unit=")})
}

// TestDetachSystemdRunFailureIsLogged: systemd-run refusing the unit is
// logged as an error with its own message.
func TestDetachSystemdRunFailureIsLogged(t *testing.T) {
	dir := t.TempDir()
	var log detachLog
	s := mustParse(t, "version: 1\nmethods:\n  reboot:\n    detach: true\n    run: [echo]\n",
		fakeSystemdRun(t, dir, 1, "Failed to connect to bus", &log))
	rep := call(t, s, "reboot", `null`)
	rep.After()
	rec := log.waitLog(t, map[string]string{"level": "ERROR", logkey.Method: "reboot", logkey.Unit: "", logkey.Err: ""})
	if !strings.Contains(fmt.Sprint(rec[logkey.Err]), "Failed to connect to bus") {
		t.Errorf("err: got %q, want systemd-run's own message in it", rec[logkey.Err])
	}
}

func TestSystemdArgv(t *testing.T) {
	sp := procSpec{path: "/sbin/shutdown", args: []string{"shutdown", "-r", "+1"}, env: []string{"PATH=/bin", "METHODD_PAYLOAD=a=b"}, dir: "/etc/methodd"}
	tests := []struct {
		name     string
		uid, gid int
		want     []string
	}{
		{"root", 0, 0, []string{"systemd-run", "--no-block", "--collect", "--quiet", "--no-ask-password", "--unit=u.service",
			"--working-directory=/etc/methodd", "--setenv=PATH=/bin", "--setenv=METHODD_PAYLOAD=a=b", "--", "/sbin/shutdown", "-r", "+1"}},
		{"not root keeps its ids", 998, 997, []string{"systemd-run", "--no-block", "--collect", "--quiet", "--no-ask-password", "--unit=u.service",
			"--working-directory=/etc/methodd", "--uid=998", "--gid=997", "--setenv=PATH=/bin", "--setenv=METHODD_PAYLOAD=a=b", "--", "/sbin/shutdown", "-r", "+1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := systemdArgv("systemd-run", "u.service", tt.uid, tt.gid, sp); !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestUnitName(t *testing.T) {
	tests := []struct{ name, method, rid, want string }{
		{"plain", "reboot", "42", `^methodd-detached-reboot-42-[0-9a-f]{8}\.service$`},
		{"no rid", "reboot", "", `^methodd-detached-reboot-[0-9a-f]{8}\.service$`},
		{"odd bytes", "up_grade", "a b/c\\d$é", `^methodd-detached-up_grade-a_b_c_d___-[0-9a-f]{8}\.service$`},
		{"long rid", "m", strings.Repeat("r", 300), `^methodd-detached-m-r{64}-[0-9a-f]{8}\.service$`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := unitName(tt.method, tt.rid)
			if !regexp.MustCompile(tt.want).MatchString(got) {
				t.Errorf("got %q, want it to match %s", got, tt.want)
			}
		})
	}
	if a, b := unitName("m", "1"), unitName("m", "1"); a == b {
		t.Errorf("two calls with one request id got the same unit %q", a)
	}
}

// TestDetachRealSystemd runs a detached command through the real
// systemd-run, where the test itself runs under systemd (INVOCATION_ID
// set) and may create system units; elsewhere it is skipped.
func TestDetachRealSystemd(t *testing.T) {
	if os.Getenv("INVOCATION_ID") == "" {
		t.Skip("not running under systemd (INVOCATION_ID unset)")
	}
	if err := exec.Command("systemd-run", "--quiet", "--wait", "--collect", "--no-ask-password", "true").Run(); err != nil {
		t.Skipf("systemd-run cannot start units here: %v", err)
	}
	dir := t.TempDir()
	opts := testOptions()
	opts.Environ = os.Environ
	s := mustParse(t, fmt.Sprintf("version: 1\nmethods:\n  later:\n    detach: true\n    shell: 'echo \"$METHODD_PAYLOAD\" > %s/done'\n", dir), opts)
	rep := call(t, s, "later", `{"x":1}`)
	rep.After()
	testkit.Eventually(t, 20*time.Second, "the unit to run the command", func() bool { return fileExists(filepath.Join(dir, "done")) })
}

// TestSystemdArgvRunAsAndLimits: a detached unit runs as run_as's user and
// with the method's limits as the unit's Limit*= directives.
func TestSystemdArgvRunAsAndLimits(t *testing.T) {
	sp := procSpec{path: "/usr/bin/apt-get", args: []string{"apt-get", "-y", "upgrade"}, dir: "/",
		runAs: &runAs{name: "updater", uid: 990, gid: 991},
		limits: &limits{list: []rlimit{{key: "memory", value: 64 << 20}, {key: "cpu", value: 600}, {key: "open_files", value: 256},
			{key: "processes", value: 64}, {key: "output", value: 1 << 30}}}}
	want := []string{"systemd-run", "--no-block", "--collect", "--quiet", "--no-ask-password", "--unit=u.service", "--working-directory=/",
		"--uid=990", "--gid=991", "--property=LimitAS=67108864", "--property=LimitCPU=600", "--property=LimitNOFILE=256",
		"--property=LimitNPROC=64", "--property=LimitFSIZE=1073741824", "--", "/usr/bin/apt-get", "-y", "upgrade"}
	if got := systemdArgv("systemd-run", "u.service", 998, 997, sp); !slices.Equal(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

// TestDetachRunAsAndLimits: a detached command started with setsid runs as
// run_as's user and under its limits.
func TestDetachRunAsAndLimits(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skipf("switching to nobody needs root; this test runs as uid %d", os.Geteuid())
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	s := parseReadable(t, fmt.Sprintf(`version: 1
methods:
  asNobody:
    detach: true
    run_as: {user: nobody}
    shell: 'id -u > %[1]s/uid.tmp && mv %[1]s/uid.tmp %[1]s/uid'
  limited:
    detach: true
    limits: {open_files: 37}
    shell: 'ulimit -n > %[1]s/nofile.tmp && mv %[1]s/nofile.tmp %[1]s/nofile'
`, dir))
	for _, m := range []string{"asNobody", "limited"} {
		rep := call(t, s, m, "")
		if rep.Status != 202 || rep.After == nil {
			t.Fatalf("%s: got %d %s, want 202 with an After", m, rep.Status, rep.Payload)
		}
		rep.After()
	}
	for file, want := range map[string]string{"uid": "65534\n", "nofile": "37\n"} {
		path := filepath.Join(dir, file)
		testkit.Eventually(t, 10*time.Second, "the detached command to write "+file, func() bool { return fileExists(path) })
		if got, _ := os.ReadFile(path); string(got) != want {
			t.Errorf("%s: got %q, want %q", file, got, want)
		}
	}
}
