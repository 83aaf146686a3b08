package cli

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/methodd/methodd/iothub"
)

// secretsIn returns the strings that must never be printed for a service
// connection string: the key (also URL-escaped and without padding) and any
// token or signature.
func secretsIn(t testing.TB, cs string) []string {
	t.Helper()
	c, err := iothub.ParseConnectionString(cs)
	if err != nil {
		t.Fatal(err)
	}
	k := c.SharedAccessKey
	return []string{k, strings.TrimRight(k, "="), strings.ReplaceAll(strings.ReplaceAll(k, "+", "%2B"), "/", "%2F"), "sig=", "SharedAccessSignature sr"}
}

func assertNoSecrets(t *testing.T, r invokeResult, secrets []string) {
	t.Helper()
	for _, s := range secrets {
		if s == "" {
			continue
		}
		if strings.Contains(r.stdout, s) || strings.Contains(r.stderr, s) {
			t.Errorf("output contains secret %q\nstdout: %s\nstderr: %s", s, r.stdout, r.stderr)
		}
	}
}

// recognisableKey is base64 of "METHODD-TEST-KEY-MUST-NOT-LEAK-0".
const recognisableKey = "TUVUSE9ERC1URVNULUtFWS1NVVNULU5PVC1MRUFLLTA="

// TestInvokeExitCodesAndNoSecretLeak drives every exit code and every error
// path against the local hub and checks that neither the hub's key nor the
// recognisable wrong key, nor any token, is ever printed.
func TestInvokeExitCodesAndNoSecretLeak(t *testing.T) {
	h := startTestHub(t, "dev", "off", "gw/mod")
	startEchoDevice(t, h, "dev")
	startEchoDevice(t, h, "gw/mod")
	realCS, err := iothub.ParseServiceConnectionString(h.info.ServiceConnectionString)
	if err != nil {
		t.Fatal(err)
	}
	wrongKey := realCS
	wrongKey.SharedAccessKey = recognisableKey
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := l.Addr().String()
	l.Close()
	unreachable := "HostName=" + closedAddr + ";SharedAccessKeyName=iothubowner;SharedAccessKey=" + recognisableKey
	local := []string{"--local", "--hub-dir", h.dir}

	tests := []struct {
		name     string
		env      []string
		stdin    string
		args     []string
		wantCode int
		wantErr  []string // substrings of stderr
	}{
		{"ok", nil, "", append(local, "dev", "echo", `{"a":1}`), 0, nil},
		{"device 500", nil, "", append(local, "dev", "fail500"), 1, []string{"status 500"}},
		{"device 418 module", nil, "", append(local, "gw/mod", "teapot"), 1, []string{"status 418"}},
		{"bad JSON", nil, "", append(local, "dev", "echo", `{"a":`), 2, []string{"not valid JSON"}},
		{"bad JSON stdin", nil, "nope", append(local, "dev", "echo", "-"), 2, []string{"not valid JSON"}},
		{"empty stdin", nil, "", append(local, "dev", "echo", "-"), 2, []string{"empty"}},
		{"missing file", nil, "", append(local, "dev", "echo", "@/nonexistent/p.json"), 2, []string{"read payload"}},
		{"bad flag", nil, "", []string{"--nope", "dev", "echo"}, 2, nil},
		{"timeout too short", nil, "", append(local, "--timeout", "4s", "dev", "echo"), 2, []string{"--timeout"}},
		{"timeout too long", nil, "", append(local, "--timeout", "301s", "dev", "echo"), 2, []string{"--timeout"}},
		{"timeout fraction", nil, "", append(local, "--timeout", "5500ms", "dev", "echo"), 2, []string{"--timeout"}},
		{"connect timeout negative", nil, "", append(local, "--connect-timeout", "-1s", "dev", "echo"), 2, []string{"--connect-timeout"}},
		{"connect timeout too long", nil, "", append(local, "--connect-timeout", "5m1s", "dev", "echo"), 2, []string{"--connect-timeout"}},
		{"bad output", nil, "", append(local, "-o", "yaml", "dev", "echo"), 2, []string{"-o"}},
		{"bad parallel", nil, "", append(local, "--parallel", "0", "--devices-file", "-", "echo"), 2, []string{"--parallel"}},
		{"too few args", nil, "", append(local, "dev"), 2, nil},
		{"too many args", nil, "", append(local, "dev", "echo", "1", "2"), 2, nil},
		{"bad method", nil, "", append(local, "dev", "a/b"), 2, []string{"method name"}},
		{"bad target", nil, "", append(local, "a/b/c", "echo"), 2, []string{"invalid target"}},
		{"no hub", nil, "", []string{"dev", "echo"}, 2, []string{"no hub"}},
		{"local and cs", nil, "", append(local, "--connection-string", unreachable, "dev", "echo"), 2, []string{"exclude"}},
		{"cs unknown key", nil, "", []string{"--connection-string", "HostName=h;SharedAccessKeyName=p;SharedAccessKey=" + recognisableKey + ";Bogus=1", "dev", "echo"}, 2, []string{"connection string"}},
		{"cs no policy", []string{"IOTHUB_CONNECTION_STRING", "HostName=h;SharedAccessKey=" + recognisableKey}, "", []string{"dev", "echo"}, 2, []string{"$IOTHUB_CONNECTION_STRING"}},
		{"cs device string", []string{"IOTHUB_SERVICE_CONNECTION_STRING", "HostName=h;DeviceId=d;SharedAccessKey=" + recognisableKey}, "", []string{"dev", "echo"}, 2, []string{"$IOTHUB_SERVICE_CONNECTION_STRING"}},
		{"cs bad base64", nil, "", []string{"--connection-string", "HostName=h;SharedAccessKeyName=p;SharedAccessKey=" + recognisableKey + "!!", "dev", "echo"}, 2, []string{"base64"}},
		{"bad ca file", nil, "", append(local, "--ca-file", "/nonexistent/ca.pem", "dev", "echo"), 2, []string{"--ca-file"}},
		{"device not found", nil, "", append(local, "nosuch", "echo"), 3, []string{"404001", "trackingId"}},
		{"module not found", nil, "", append(local, "dev/nomod", "echo"), 3, []string{"404010", "trackingId"}},
		{"device offline", nil, "", append(local, "off", "echo"), 3, []string{"404103", "trackingId"}},
		{"device timeout", nil, "", append(local, "--timeout", "5s", "dev", "sleep"), 4, []string{"504101", "trackingId"}},
		{"wrong key", []string{"IOTHUB_CONNECTION_STRING", wrongKey.String()}, "", []string{"--ca-file", h.info.CAFile, "dev", "echo"}, 5, []string{"401002", "trackingId"}},
		{"unreachable host", nil, "", []string{"--connection-string", unreachable, "dev", "echo"}, 5, []string{"connect"}},
		{"no local hub", nil, "", []string{"--local", "--hub-dir", t.TempDir(), "dev", "echo"}, 5, []string{"no local hub"}},
	}
	secrets := append(secretsIn(t, h.info.ServiceConnectionString), secretsIn(t, wrongKey.String())...)
	for _, dcs := range h.info.Devices {
		secrets = append(secrets, secretsIn(t, dcs)...)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := runInvoke(t, h.env(tt.env...), tt.stdin, tt.args...)
			if r.code != tt.wantCode {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, tt.wantCode, r.stdout, r.stderr)
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(r.stderr, s) {
					t.Errorf("stderr %q lacks %q", r.stderr, s)
				}
			}
			if tt.wantCode >= 2 && r.stdout != "" {
				t.Errorf("stdout %q, want nothing on an error", r.stdout)
			}
			assertNoSecrets(t, r, secrets)
		})
	}
}

// TestInvokePayloadSources sends every kind of JSON value from every source
// and checks the device got the bytes verbatim and stdout is the hub's body
// byte for byte.
func TestInvokePayloadSources(t *testing.T) {
	h := startTestHub(t, "dev", "gw/mod")
	dev := startEchoDevice(t, h, "dev")
	mod := startEchoDevice(t, h, "gw/mod")
	file := filepath.Join(t.TempDir(), "payload.json")
	values := []string{`null`, `[1, "two", {"three": 3.0}]`, `"a string with \"quotes\" and é"`, `-12.5e3`, `{"nested": {"x": [true, false]}}`, `true`, `0`}
	type source struct {
		name  string
		arg   func(v string) []string
		stdin func(v string) string
	}
	sources := []source{
		{"text", func(v string) []string { return []string{v} }, func(string) string { return "" }},
		{"file", func(v string) []string {
			if err := os.WriteFile(file, []byte(v+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			return []string{"@" + file}
		}, func(string) string { return "" }},
		{"stdin", func(string) []string { return []string{"-"} }, func(v string) string { return "  " + v + "\n" }},
	}
	check := func(t *testing.T, d *echoDevice, target string, args []string, stdin, want string) {
		t.Helper()
		r := runInvoke(t, h.env(), stdin, append([]string{"--local", "--hub-dir", h.dir, target, "echo"}, args...)...)
		if r.code != 0 {
			t.Fatalf("exit %d, stderr %s", r.code, r.stderr)
		}
		if got := string(d.lastReceived(t)); got != want {
			t.Errorf("device received %q, want %q", got, want)
		}
		dv, md, _ := strings.Cut(target, "/")
		body := iothub.MethodRequest{MethodName: "echo", Payload: json.RawMessage(want), ResponseTimeoutInSeconds: 30}.Encode()
		status, direct := h.directCall(t, iothub.MethodsPath(dv, md), body)
		if status != 200 {
			t.Fatalf("direct call: HTTP %d %s", status, direct)
		}
		if r.stdout != string(direct)+"\n" {
			t.Errorf("stdout %q, want the hub's body %q and a newline", r.stdout, direct)
		}
	}
	for _, src := range sources {
		for _, v := range values {
			t.Run(src.name+"/"+v, func(t *testing.T) {
				check(t, dev, "dev", src.arg(v), src.stdin(v), v)
			})
		}
	}
	t.Run("omitted is null", func(t *testing.T) { check(t, dev, "dev", nil, "", "null") })
	t.Run("module target", func(t *testing.T) { check(t, mod, "gw/mod", []string{`{"to": "module"}`}, "", `{"to": "module"}`) })
}

func TestInvokeOutputFormats(t *testing.T) {
	h := startTestHub(t, "dev")
	startEchoDevice(t, h, "dev")
	tests := []struct{ output, want string }{
		{"json", "{\"status\":200,\"payload\":[1, {\"a\": \"b\"}]}\n"},
		{"pretty", "{\n  \"status\": 200,\n  \"payload\": [\n    1,\n    {\n      \"a\": \"b\"\n    }\n  ]\n}\n"},
		{"payload", "[1, {\"a\": \"b\"}]\n"},
	}
	for _, tt := range tests {
		t.Run(tt.output, func(t *testing.T) {
			r := runInvoke(t, h.env(), "", "--local", "--hub-dir", h.dir, "-o", tt.output, "dev", "echo", `[1, {"a": "b"}]`)
			if r.code != 0 || r.stdout != tt.want {
				t.Errorf("exit %d stdout %q, want 0 %q (stderr %s)", r.code, r.stdout, tt.want, r.stderr)
			}
		})
	}
}

// TestInvokeInputErrorsMakeNoRequest checks that input errors are found
// before any connection is opened.
func TestInvokeInputErrorsMakeNoRequest(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cs := "HostName=" + l.Addr().String() + ";SharedAccessKeyName=iothubowner;SharedAccessKey=" + recognisableKey
	env := func(k string) string {
		if k == "IOTHUB_CONNECTION_STRING" {
			return cs
		}
		return ""
	}
	for _, args := range [][]string{
		{"dev", "echo", "{bad"},
		{"dev", "echo", "@/nonexistent"},
		{"--timeout", "1s", "dev", "echo"},
		{"--devices-file", "-", "echo", "-"},
		{"--devices-file", "/nonexistent", "echo"},
		{"dev", "echo", `"` + strings.Repeat("x", iothub.MaxPayloadBytes) + `"`},
	} {
		if r := runInvoke(t, env, "dev1\n", args...); r.code != 2 {
			t.Errorf("%q: exit %d, want 2 (stderr %s)", args, r.code, r.stderr)
		}
	}
	if err := l.(*net.TCPListener).SetDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if c, err := l.Accept(); err == nil {
		c.Close()
		t.Error("a connection was opened for an invalid input")
	}
}

func TestInvokeOversizePayloadFromStdin(t *testing.T) {
	big := `"` + strings.Repeat("x", 5*iothub.MaxPayloadBytes) + `"`
	env := func(k string) string {
		if k == "IOTHUB_CONNECTION_STRING" {
			return "HostName=127.0.0.1:1;SharedAccessKeyName=p;SharedAccessKey=" + recognisableKey
		}
		return ""
	}
	r := runInvoke(t, env, big, "dev", "echo", "-")
	if r.code != exitUsage || !strings.Contains(r.stderr, "limit") {
		t.Errorf("exit %d stderr %q, want 2 naming the size limit", r.code, r.stderr)
	}
}

func TestProgressLine(t *testing.T) {
	var b strings.Builder
	now := time.Unix(1_800_000_000, 0)
	p := &progress{w: &b, total: 4, now: func() time.Time { return now }}
	p.update(1) // first draw is immediate
	p.clear()
	now = now.Add(99 * time.Millisecond)
	p.update(2) // throttled: within 100 ms of the last draw
	now = now.Add(time.Millisecond)
	p.update(3) // 100 ms later: drawn
	p.update(4) // the last one is always drawn
	p.clear()
	p.clear() // nothing shown: no-op
	want := "\r[=======                       ] 1/4\r\033[K\r[======================        ] 3/4\r[==============================] 4/4\r\033[K"
	if b.String() != want {
		t.Errorf("got  %q\nwant %q", b.String(), want)
	}
	var none strings.Builder
	q := newProgress(&none, 4, time.Now) // a Builder is not a terminal
	q.update(4)
	q.clear()
	if none.Len() != 0 {
		t.Errorf("drew %q on a non-terminal", none.String())
	}
}

func TestIsTerminal(t *testing.T) {
	devNull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer devNull.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	for name, f := range map[string]*os.File{"/dev/null (a character device)": devNull, "a pipe": w} {
		if isTerminal(f) {
			t.Errorf("%s reported as a terminal", name)
		}
	}
	if isTerminal(&strings.Builder{}) {
		t.Error("a strings.Builder reported as a terminal")
	}
}
