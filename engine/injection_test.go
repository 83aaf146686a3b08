package engine

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// dump is what the helper command prints.
type dump struct {
	Args  []string `json:"args"`
	Env   []string `json:"env"`
	Stdin string   `json:"stdin"`
}

// hostileValues are payload strings a shell would interpret.
func hostileValues(marker string) map[string]string {
	return map[string]string{
		"semicolon":    "; rm -rf /tmp/x",
		"substitution": "$(touch " + marker + ")",
		"backticks":    "`touch " + marker + "`",
		"newlines":     "a\nb\n; touch " + marker + "\n",
		"leading flag": "--flag=1",
		"glob":         "* ?[a] ~root",
		"quotes 4KB":   strings.Repeat(`"'`, 2048),
		"unicode":      "é ✓ \u2028 \t",
		"dollar brace": "${payload} ${HOME}",
	}
}

// TestInjectionArgvAndEnv sends hostile values through run (argv) and env
// to a helper that dumps exactly what it received: every value arrives byte
// for byte as one argument and as METHODD_PARAM_V, and nothing is executed.
func TestInjectionArgvAndEnv(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	marker := filepath.Join(dir, "pwned")
	s := mustParse(t, `
version: 1
methods:
  dump:
    params:
      v: {type: string, required: true}
    run: [`+exe+`, "${params.v}", "pre-${params.v}-post", "${payload.v}"]
    env:
      `+helperEnv+`: dump
      COPY: "${params.v}"
`)
	for name, v := range hostileValues(marker) {
		t.Run(name, func(t *testing.T) {
			payload, _ := json.Marshal(map[string]string{"v": v})
			rep := call(t, s, "dump", string(payload))
			if rep.Status != 200 {
				t.Fatalf("status %d: %.500s", rep.Status, rep.Payload)
			}
			var d dump
			if err := json.Unmarshal(rep.Payload, &d); err != nil {
				t.Fatalf("helper output: %v: %.300s", err, rep.Payload)
			}
			wantArgs := []string{v, "pre-" + v + "-post", v}
			if !slices.Equal(d.Args, wantArgs) {
				t.Errorf("argv:\ngot  %q\nwant %q", d.Args, wantArgs)
			}
			for _, kv := range []string{"METHODD_PARAM_V=" + v, "COPY=" + v, "METHODD_PAYLOAD=" + string(payload), "METHODD_METHOD=dump"} {
				if !slices.Contains(d.Env, kv) {
					t.Errorf("env lacks %.80q", kv)
				}
			}
			if d.Stdin != string(payload) {
				t.Errorf("stdin: got %.80q, want %.80q", d.Stdin, payload)
			}
			if fileExists(marker) {
				t.Fatalf("%s exists: a payload value was executed", marker)
			}
		})
	}
}

// TestInjectionShellEnv passes the hostile values to a shell method, which
// reads them only from the environment: its output is the value itself and
// the marker never appears.
func TestInjectionShellEnv(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "pwned")
	s := mustParse(t, `
version: 1
methods:
  echo:
    params:
      v: {type: string, required: true}
    shell: 'printf "%s" "$METHODD_PARAM_V"'
    reply: {payload: stdout}
`)
	for name, v := range hostileValues(marker) {
		t.Run(name, func(t *testing.T) {
			payload, _ := json.Marshal(map[string]string{"v": v})
			rep := call(t, s, "echo", string(payload))
			var got string
			if err := json.Unmarshal(rep.Payload, &got); err != nil || rep.Status != 200 {
				t.Fatalf("status %d payload %.300s (%v)", rep.Status, rep.Payload, err)
			}
			if got != v {
				t.Errorf("shell saw %.80q, want %.80q", got, v)
			}
			if fileExists(marker) {
				t.Fatalf("%s exists: a payload value was executed", marker)
			}
		})
	}
}

// TestCommandEnvironmentIsMinimal checks that a command sees only PATH,
// LANG, HOME, the METHODD_* variables and its env entries, never the
// daemon's environment (here the real process environment, Environ nil).
func TestCommandEnvironmentIsMinimal(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("IOTHUB_DEVICE_CONNECTION_STRING", "HostName=x;SharedAccessKey=secret")
	t.Setenv("HOME", "/home/methodd")
	opts := testOptions()
	opts.Environ = nil
	s := mustParse(t, `
version: 1
methods:
  dump:
    params:
      n: {type: integer, default: 7}
      o: {type: object}
      my-flag: {type: boolean}
    run: [`+exe+`]
    env: {`+helperEnv+`: dump}
`, opts)
	rep := call(t, s, "dump", `{"o":{"k":[1,"x"]},"my-flag":false}`)
	var d dump
	if err := json.Unmarshal(rep.Payload, &d); err != nil {
		t.Fatalf("status %d: %v: %.300s", rep.Status, err, rep.Payload)
	}
	var names []string
	for _, kv := range d.Env {
		name, _, _ := strings.Cut(kv, "=")
		names = append(names, name)
	}
	slices.Sort(names)
	want := []string{helperEnv, "HOME", "METHODD_DEVICE_ID", "METHODD_METHOD", "METHODD_MODULE_ID", "METHODD_PARAM_MY_FLAG",
		"METHODD_PARAM_N", "METHODD_PARAM_O", "METHODD_PAYLOAD", "METHODD_REQUEST_ID", "PATH"}
	if os.Getenv("LANG") != "" {
		want = append(want, "LANG")
		slices.Sort(want)
	}
	if !slices.Equal(names, want) {
		t.Errorf("environment names:\ngot  %v\nwant %v", names, want)
	}
	for _, kv := range []string{"METHODD_PARAM_N=7", `METHODD_PARAM_O={"k":[1,"x"]}`, "METHODD_PARAM_MY_FLAG=false", "HOME=/home/methodd",
		"METHODD_DEVICE_ID=dev-1", "METHODD_MODULE_ID=mod-1", "METHODD_REQUEST_ID=7"} {
		if !slices.Contains(d.Env, kv) {
			t.Errorf("env lacks %s (got %q)", kv, d.Env)
		}
	}
}

// TestNULByteIsRefused: a NUL cannot travel in argv or env; the call is a
// 400, not a silently shortened argument.
func TestNULByteIsRefused(t *testing.T) {
	s := mustParse(t, `
version: 1
methods:
  a: {params: {v: {type: string}}, run: [echo, "${params.v}"]}
  e: {params: {v: {type: string}}, shell: 'true'}
`)
	for _, m := range []string{"a", "e"} {
		if rep := call(t, s, m, `{"v":"x\u0000y"}`); rep.Status != 400 || !strings.Contains(string(rep.Payload), "NUL") {
			t.Errorf("%s: got %d %s, want 400 naming the NUL byte", m, rep.Status, rep.Payload)
		}
	}
}
