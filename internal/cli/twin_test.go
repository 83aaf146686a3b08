package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/methodd/methodd/invoke"
	"github.com/methodd/methodd/iothub"
)

// runTwin runs `methodd twin args...` in-process.
func runTwin(t testing.TB, getenv func(string) string, stdin string, args ...string) invokeResult {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(context.Background(), append([]string{"twin"}, args...),
		Env{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb, Getenv: getenv})
	return invokeResult{code, out.String(), errb.String()}
}

// TestTwinInputErrorsMakeNoRequest: every usage and input error exits 2
// (help exits 0) before any connection is opened, and prints nothing on
// stdout.
func TestTwinInputErrorsMakeNoRequest(t *testing.T) {
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
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  []string
	}{
		{"no subcommand", nil, 2, []string{"usage: methodd twin show", "want a subcommand"}},
		{"unknown subcommand", []string{"get", "dev"}, 2, []string{"usage: methodd twin show", `unknown subcommand "get"`}},
		{"help", []string{"-h"}, 0, []string{"usage: methodd twin show", "Exit status"}},
		{"show help", []string{"show", "-h"}, 0, []string{"usage: methodd twin show", "-connection-string"}},
		{"update help", []string{"update", "--help"}, 0, []string{"usage: methodd twin show", "-desired"}},
		{"show no target", []string{"show"}, 2, []string{"want one DEVICE[/MODULE], got 0"}},
		{"show two targets", []string{"show", "a", "b"}, 2, []string{"got 2"}},
		{"show bad target", []string{"show", "a/b/c"}, 2, []string{"invalid target"}},
		{"show empty module", []string{"show", "a/"}, 2, []string{"invalid target"}},
		{"show bad output", []string{"show", "-o", "yaml", "dev"}, 2, []string{`-o "yaml"`}},
		{"show unknown flag", []string{"show", "--nope", "dev"}, 2, nil},
		{"show update-only flag", []string{"show", "dev", "--desired", "{}"}, 2, nil},
		{"local and cs", []string{"show", "--local", "--connection-string", cs, "dev"}, 2, []string{"exclude"}},
		{"update nothing", []string{"update", "dev"}, 2, []string{"give --tags, --desired or both"}},
		{"update nothing with etag", []string{"update", "dev", "--etag", "AAAAAAAAAAE="}, 2, []string{"give --tags"}},
		{"desired bad JSON", []string{"update", "dev", "--desired", `{"a":`}, 2, []string{"--desired is not valid JSON"}},
		{"desired array", []string{"update", "dev", "--desired", `[1]`}, 2, []string{"--desired must be a JSON object, got an array"}},
		{"desired two values", []string{"update", "dev", "--desired", `{} {}`}, 2, []string{"--desired is not valid JSON"}},
		{"tags null", []string{"update", "dev", "--tags", `null`}, 2, []string{"--tags must be a JSON object, got null"}},
		{"tags string", []string{"update", "--tags", `"{}"`, "dev"}, 2, []string{"--tags must be a JSON object, got a string"}},
		{"tags number", []string{"update", "dev", "--tags", `12`}, 2, []string{"got a number"}},
		{"tags empty", []string{"update", "dev", "--tags", ``, "--desired", `{}`}, 2, []string{"--tags is not valid JSON"}},
		{"tags missing file", []string{"update", "dev", "--tags", "@/nonexistent/tags.json"}, 2, []string{"--tags", "no such file"}},
		{"both from stdin", []string{"update", "dev", "--tags", "-", "--desired", "-"}, 2, []string{"standard input"}},
		{"desired bad stdin", []string{"update", "dev", "--desired", "-"}, 2, []string{"--desired from standard input is not valid JSON"}},
		{"bad etag", []string{"update", "dev", "--desired", "{}", "--etag", "a b"}, 2, []string{"--etag"}},
		{"update two targets", []string{"update", "dev", "other", "--desired", "{}"}, 2, []string{"got 2"}},
		{"update bad target", []string{"update", "--desired", "{}", "a b"}, 2, []string{"invalid target"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runTwin(t, env, "not json", tt.args...)
			if r.code != tt.wantCode {
				t.Errorf("exit %d, want %d\nstderr: %s", r.code, tt.wantCode, r.stderr)
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(r.stderr, s) {
					t.Errorf("stderr %q lacks %q", r.stderr, s)
				}
			}
			if r.stdout != "" {
				t.Errorf("stdout %q, want nothing", r.stdout)
			}
		})
	}
	if err := l.(*net.TCPListener).SetDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if c, err := l.Accept(); err == nil {
		c.Close()
		t.Error("a connection was opened for an invalid input")
	}
}

func TestParseInterleaved(t *testing.T) {
	tests := []struct {
		args     []string
		wantPos  []string
		wantTags string
	}{
		{[]string{"dev", "--tags", "{}"}, []string{"dev"}, "{}"},
		{[]string{"--tags", "{}", "dev"}, []string{"dev"}, "{}"},
		{[]string{"a", "--tags", "{}", "b"}, []string{"a", "b"}, "{}"},
		{[]string{"--", "-dev", "--tags", "x"}, []string{"-dev", "--tags", "x"}, ""},
		{[]string{"--tags", "{}", "a", "--", "-b"}, []string{"a", "-b"}, "{}"},
		{nil, nil, ""},
	}
	for _, tt := range tests {
		c := &twinCmd{env: Env{Stderr: io.Discard}}
		var f twinFlags
		pos, err := parseInterleaved(c.updateFlagSet(&f), tt.args)
		if err != nil || !slices.Equal(pos, tt.wantPos) || f.tags != tt.wantTags {
			t.Errorf("%q: got %q tags %q (%v), want %q tags %q", tt.args, pos, f.tags, err, tt.wantPos, tt.wantTags)
		}
	}
}

func TestTwinPatchBody(t *testing.T) {
	file := filepath.Join(t.TempDir(), "desired.json")
	if err := os.WriteFile(file, []byte("{\n  \"interval\": 30,\n  \"route\": null\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		args  []string
		stdin string
		want  string
	}{
		{"tags", []string{"--tags", `{"site": "berlin", "old": null}`}, "", `{"tags":{"site":"berlin","old":null}}`},
		{"desired", []string{"--desired", `{"x": [1, 2.50, "é"]}`}, "", `{"properties":{"desired":{"x":[1,2.50,"é"]}}}`},
		{"both", []string{"--desired", `{}`, "--tags", `{"a":{"b":1}}`}, "", `{"tags":{"a":{"b":1}},"properties":{"desired":{}}}`},
		{"desired file", []string{"--desired", "@" + file}, "", `{"properties":{"desired":{"interval":30,"route":null}}}`},
		{"tags stdin", []string{"--tags", "-", "--desired", "{}"}, "  {\"k\" : true}\n", `{"tags":{"k":true},"properties":{"desired":{}}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &twinCmd{env: Env{Stdin: strings.NewReader(tt.stdin), Stderr: io.Discard}}
			var f twinFlags
			fs := c.updateFlagSet(&f)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			got, err := c.patch(fs, f)
			if err != nil || string(got) != tt.want {
				t.Errorf("got %s (%v), want %s", got, err, tt.want)
			}
		})
	}
}

func TestTwinExitCodes(t *testing.T) {
	legacy412 := iothub.ParseError(412, "", []byte(`{"Message":"ErrorCode:PreconditionFailed;Precondition failed","ExceptionMessage":"Tracking ID:abc"}`))
	aspNet404 := iothub.ParseError(404, "", []byte(`{"Message":"No HTTP resource was found that matches the request URI."}`))
	tests := []struct {
		name     string
		err      error
		want     int
		wantText string
	}{
		{"device not found", fmt.Errorf("get twin d: %w", iothub.NewError(iothub.CodeDeviceNotFound, "x")), exitUnreachable, "404001"},
		{"module not found", fmt.Errorf("get twin d/m: %w", iothub.NewError(iothub.CodeModuleNotFound, "x")), exitUnreachable, "404010"},
		{"stale etag", fmt.Errorf("update twin d: %w", iothub.NewError(iothub.CodePreconditionFailed, "x")), exitFailure, "twin show"},
		{"stale etag, legacy body", legacy412, exitFailure, "current etag"},
		{"unauthorized", iothub.NewError(iothub.CodeUnauthorized, "x"), exitHubError, "401002"},
		{"server error", iothub.NewError(iothub.CodeServerError, "x"), exitHubError, "500001"},
		{"throttled", iothub.NewError(iothub.CodeThrottled, "x"), exitHubError, "429001"},
		{"bad request", iothub.NewError(iothub.CodeArgumentInvalid, "x"), exitUsage, "400004"},
		{"404 without a code", aspNet404, exitHubError, "No HTTP resource"},
		{"network", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, exitHubError, "refused"},
		{"cancelled", fmt.Errorf("get twin d: %w", context.Canceled), exitHubError, "canceled"},
		{"malformed", fmt.Errorf("get twin d: %w", invoke.ErrMalformedTwin), exitHubError, "malformed"},
		{"refused input", fmt.Errorf("update twin d: %w", invoke.ErrTwinPatch), exitUsage, "invalid twin update"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var errb bytes.Buffer
			if got := exitCode(twinExit(tt.err), &errb); got != tt.want {
				t.Errorf("exit %d, want %d", got, tt.want)
			}
			if !strings.Contains(errb.String(), tt.wantText) {
				t.Errorf("message %q lacks %q", errb.String(), tt.wantText)
			}
		})
	}
}

// twinFields is what the tests read of a twin document.
type twinFields struct {
	DeviceID   string         `json:"deviceId"`
	ModuleID   string         `json:"moduleId"`
	ETag       string         `json:"etag"`
	Tags       map[string]any `json:"tags"`
	Properties struct {
		Desired map[string]any `json:"desired"`
	} `json:"properties"`
}

// oneTwin decodes stdout, which must be exactly one line holding a twin.
func oneTwin(t *testing.T, stdout string) twinFields {
	t.Helper()
	line, ok := strings.CutSuffix(stdout, "\n")
	if !ok || strings.Contains(line, "\n") {
		t.Fatalf("stdout %q is not one line", stdout)
	}
	var d twinFields
	if err := json.Unmarshal([]byte(line), &d); err != nil {
		t.Fatalf("stdout %q: %v", stdout, err)
	}
	return d
}

// directTwin GETs a twin from the hub with plain net/http (not through
// package invoke) and returns the body byte for byte.
func (h *testHub) directTwin(t testing.TB, device, module string) []byte {
	t.Helper()
	cs, err := iothub.ParseServiceConnectionString(h.info.ServiceConnectionString)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := iothub.Sign(cs.HostName, cs.SharedAccessKey, cs.SharedAccessKeyName, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, "https://"+h.info.HTTPSAddr+iothub.TwinPath(device, module)+"?"+iothub.MethodsQuery, nil)
	req.Header.Set("Authorization", tok)
	cl := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: h.roots(t), ServerName: "localhost"}}}
	defer cl.CloseIdleConnections()
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("direct GET %s: HTTP %d %s %v", iothub.TwinPath(device, module), resp.StatusCode, b, err)
	}
	return b
}

// TestTwinCommandOnLocalHub drives show and update against a real local hub.
func TestTwinCommandOnLocalHub(t *testing.T) {
	const escDev, escMod = "dev(1)!'*", "m:@x'"
	h := startTestHub(t, "dev", "gw/mod", escDev+"/"+escMod)
	local := func(args ...string) []string {
		return append([]string{args[0], "--local", "--hub-dir", h.dir}, args[1:]...)
	}
	twin := func(t *testing.T, stdin string, args ...string) invokeResult {
		t.Helper()
		return runTwin(t, h.env(), stdin, local(args...)...)
	}
	mustTwin := func(t *testing.T, args ...string) twinFields {
		t.Helper()
		r := twin(t, "", args...)
		if r.code != 0 {
			t.Fatalf("%q: exit %d, stderr %s", args, r.code, r.stderr)
		}
		return oneTwin(t, r.stdout)
	}

	t.Run("show device twin", func(t *testing.T) {
		r := twin(t, "", "show", "dev")
		if r.code != 0 {
			t.Fatalf("exit %d, stderr %s", r.code, r.stderr)
		}
		if d := oneTwin(t, r.stdout); d.DeviceID != "dev" || d.ModuleID != "" || d.ETag == "" {
			t.Errorf("got %s, want the twin of dev with an etag", r.stdout)
		}
		var want bytes.Buffer
		if err := json.Compact(&want, h.directTwin(t, "dev", "")); err != nil {
			t.Fatal(err)
		}
		if r.stdout != want.String()+"\n" {
			t.Errorf("stdout %q, want the hub's document on one line %q", r.stdout, want.String())
		}
	})
	t.Run("show pretty", func(t *testing.T) {
		r := twin(t, "", "show", "-o", "pretty", "dev")
		var want bytes.Buffer
		if err := json.Indent(&want, h.directTwin(t, "dev", ""), "", "  "); err != nil {
			t.Fatal(err)
		}
		if r.code != 0 || r.stdout != want.String()+"\n" || strings.Count(r.stdout, "\n") < 3 {
			t.Errorf("exit %d stdout %q, want 0 and the indented document %q", r.code, r.stdout, want.String())
		}
	})
	t.Run("show module twin", func(t *testing.T) {
		if d := mustTwin(t, "show", "gw/mod"); d.DeviceID != "gw" || d.ModuleID != "mod" {
			t.Errorf("got deviceId %q moduleId %q, want gw mod", d.DeviceID, d.ModuleID)
		}
	})
	t.Run("update desired and tags, then show", func(t *testing.T) {
		d := mustTwin(t, "update", "gw/mod", "--tags", `{"site": "berlin"}`, "--desired", `{"interval": 5, "mode": {"eco": true}}`)
		if d.Tags["site"] != "berlin" || d.Properties.Desired["interval"] != 5.0 || d.Properties.Desired["mode"] == nil {
			t.Fatalf("update printed %+v, want tags.site and desired.interval, desired.mode", d)
		}
		d2 := mustTwin(t, "update", "gw/mod", "--desired", `{"mode": null}`)
		shown := mustTwin(t, "show", "gw/mod")
		if shown.Tags["site"] != "berlin" || shown.Properties.Desired["interval"] != 5.0 || shown.Properties.Desired["mode"] != nil {
			t.Errorf("show after updates: %+v; want tags.site, desired.interval and no desired.mode", shown)
		}
		if shown.ETag != d2.ETag || shown.ETag == d.ETag {
			t.Errorf("etags: first update %q, second %q, show %q; want show = second ≠ first", d.ETag, d2.ETag, shown.ETag)
		}
	})
	t.Run("stale etag", func(t *testing.T) {
		old := mustTwin(t, "show", "dev").ETag
		fresh := mustTwin(t, "update", "dev", "--etag", old, "--desired", `{"v": 1}`)
		r := twin(t, "", "update", "dev", "--etag", old, "--desired", `{"v": 2}`)
		if r.code != exitFailure || r.stdout != "" {
			t.Errorf("exit %d stdout %q, want 1 and nothing", r.code, r.stdout)
		}
		for _, s := range []string{"412", "PreconditionFailed", "etag", "twin show"} {
			if !strings.Contains(r.stderr, s) {
				t.Errorf("stderr %q lacks %q", r.stderr, s)
			}
		}
		if now := mustTwin(t, "show", "dev"); now.ETag != fresh.ETag || now.Properties.Desired["v"] != 1.0 {
			t.Errorf("a refused update changed the twin: %+v", now)
		}
		if d := mustTwin(t, "update", "dev", "--etag", fresh.ETag, "--desired", `{"v": 3}`); d.Properties.Desired["v"] != 3.0 {
			t.Errorf("the current etag was refused: %+v", d)
		}
	})
	t.Run("ids that need escaping", func(t *testing.T) {
		for _, id := range []string{escDev, escDev + "/" + escMod} {
			mustTwin(t, "update", id, "--tags", `{"escaped": true}`)
			dev, mod, _ := strings.Cut(id, "/")
			if d := mustTwin(t, "show", id); d.DeviceID != dev || d.ModuleID != mod || d.Tags["escaped"] != true {
				t.Errorf("show %s: %+v", id, d)
			}
		}
	})
	t.Run("bad desired JSON leaves the twin alone", func(t *testing.T) {
		before := h.directTwin(t, "dev", "")
		r := twin(t, "", "update", "dev", "--desired", `{"v": 4,}`)
		if r.code != exitUsage || !strings.Contains(r.stderr, "--desired") {
			t.Errorf("exit %d stderr %q, want 2 naming --desired", r.code, r.stderr)
		}
		if after := h.directTwin(t, "dev", ""); !bytes.Equal(after, before) {
			t.Errorf("the twin changed: %s → %s", before, after)
		}
	})

	realCS, err := iothub.ParseServiceConnectionString(h.info.ServiceConnectionString)
	if err != nil {
		t.Fatal(err)
	}
	wrongKey := realCS
	wrongKey.SharedAccessKey = recognisableKey
	errTests := []struct {
		name     string
		env      []string
		args     []string
		wantCode int
		wantErr  []string
	}{
		{"unknown device", nil, local("show", "nosuch"), exitUnreachable, []string{"404001", "trackingId"}},
		{"unknown device update", nil, local("update", "nosuch", "--desired", "{}"), exitUnreachable, []string{"404001"}},
		{"unknown module", nil, local("update", "dev/nomod", "--tags", `{"a":1}`), exitUnreachable, []string{"404010"}},
		{"unknown module show", nil, local("show", "dev/nomod"), exitUnreachable, []string{"404010"}},
		{"env connection string", []string{"IOTHUB_CONNECTION_STRING", realCS.String()}, []string{"show", "--ca-file", h.info.CAFile, "dev"}, 0, nil},
		{"wrong key", []string{"IOTHUB_SERVICE_CONNECTION_STRING", wrongKey.String()}, []string{"show", "--ca-file", h.info.CAFile, "dev"}, exitHubError, []string{"401002", "trackingId"}},
		{"wrong key update", nil, []string{"update", "--connection-string", wrongKey.String(), "--ca-file", h.info.CAFile, "dev", "--tags", "{}"}, exitHubError, []string{"401002"}},
		{"untrusted hub", []string{"IOTHUB_CONNECTION_STRING", realCS.String()}, []string{"show", "dev"}, exitHubError, []string{"certificate"}},
		{"no local hub", nil, []string{"show", "--local", "--hub-dir", t.TempDir(), "dev"}, exitHubError, []string{"no local hub"}},
	}
	secrets := append(secretsIn(t, h.info.ServiceConnectionString), secretsIn(t, wrongKey.String())...)
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) {
			r := runTwin(t, h.env(tt.env...), "", tt.args...)
			if r.code != tt.wantCode {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, tt.wantCode, r.stdout, r.stderr)
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(r.stderr, s) {
					t.Errorf("stderr %q lacks %q", r.stderr, s)
				}
			}
			if tt.wantCode != 0 && r.stdout != "" {
				t.Errorf("stdout %q, want nothing on an error", r.stdout)
			}
			assertNoSecrets(t, r, secrets)
		})
	}
}
