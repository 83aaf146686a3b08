package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func loadValid(t *testing.T, name string) *Set {
	t.Helper()
	file := filepath.Join("testdata/valid", name)
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Parse(file, data, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestCallReplies covers the status rules of design §3 on testdata/valid/full.yaml.
func TestCallReplies(t *testing.T) {
	s := loadValid(t, "full.yaml")
	cases := []struct {
		name, method, payload string
		status                int
		want                  string // exact compact JSON, or "" to skip
		contains              string // substring of the payload
	}{
		{"echo object", "echo", `{"a":[1,2]}`, 200, `{"a":[1,2]}`, ""},
		{"echo empty is null", "echo", ``, 200, `null`, ""},
		{"echo string", "echo", ` "x" `, 200, `"x"`, ""},
		{"bad JSON", "echo", `{"a":`, 400, "", "payload is not valid JSON"},
		{"unknown method", "nope", `{}`, 404, `{"error":"unknown method \"nope\"","methods":["argv","echo","greet","health","info","script"]}`, ""},
		{"disabled catalog", "catalog", ``, 404, "", "unknown method"},
		{"greet ok", "greet", `{"name":"Ann","extra":"ignored"}`, 200, `{"ctx":["greet","dev-1","mod-1","7"],"hello":"Ann","times":1}`, ""},
		{"greet loud status", "greet", `{"name":"Ann","loud":true,"times":3}`, 201, "", `"hello":"ANN"`},
		{"missing required", "greet", `{}`, 400, `{"error":"missing required parameter \"name\"","param":"name"}`, ""},
		{"null payload is no params", "greet", `null`, 400, "", `"param":"name"`},
		{"payload not object", "greet", `[1]`, 400, "", "payload must be a JSON object"},
		{"wrong type", "greet", `{"name":5}`, 400, `{"error":"parameter \"name\" must be a string, got the number 5","param":"name"}`, ""},
		{"pattern is anchored", "greet", `{"name":"Ann1"}`, 400, "", "does not match pattern"},
		{"string max length", "greet", `{"name":"` + strings.Repeat("a", 21) + `"}`, 400, "", "length must be <= 20"},
		{"integer not integral", "greet", `{"name":"A","times":1.5}`, 400, "", "must be an integer"},
		{"integer max", "greet", `{"name":"A","times":4}`, 400, "", "must be <= 3"},
		{"number min", "greet", `{"name":"A","ratio":-0.5}`, 400, "", `"param":"ratio"`},
		{"array items", "greet", `{"name":"A","tags":[1,2,3]}`, 400, "", "length must be <= 2"},
		{"object type", "greet", `{"name":"A","meta":[]}`, 400, "", "must be an object"},
		{"enum", "greet", `{"name":"A","color":"blue"}`, 400, "", `one of \"red\", \"green\"`},
		{"explicit null uses default", "greet", `{"name":"A","times":null}`, 200, "", `"times":1`},
		{"when false", "greet", `{"name":"nobody"}`, 400, "", "when condition is false"},
		{"renamed ping", "health", ``, 200, `{"pong":true,"time":"2026-01-02T03:04:05.000000006Z"}`, ""},
		{"argv interpolation", "argv", `{"word":"yo"}`, 200, `{"exitCode":0,"stdout":"yo ${literal} n=2\n","stderr":""}`, ""},
		{"shell with env", "script", `{"word":"yo"}`, 200, `{"code":0,"cut":false,"ms":true,"out":"yo hello"}`, ""},
		{"functions", "info", ``, 200, `{"at":"2026-01-02T03:04:05.000000006Z","home":"/root","host":"gw-test","secret":"","uptime":5400}`, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rep := call(t, s, c.method, c.payload)
			if rep.Status != c.status {
				t.Errorf("status: got %d, want %d (payload %s)", rep.Status, c.status, rep.Payload)
			}
			if c.want != "" && compactJSON(t, string(rep.Payload)) != compactJSON(t, c.want) {
				t.Errorf("payload:\ngot  %s\nwant %s", rep.Payload, c.want)
			}
			if c.contains != "" && !strings.Contains(string(rep.Payload), c.contains) {
				t.Errorf("payload %s does not contain %s", rep.Payload, c.contains)
			}
		})
	}
}

// TestCallCommandReplies covers the default command reply, output caps and
// runtime failures.
func TestCallCommandReplies(t *testing.T) {
	s := mustParse(t, `
version: 1
methods:
  json: {shell: 'printf "  {\"a\": 1}\n"'}
  text: {shell: 'printf "hello\\tworld"; printf "oops" >&2'}
  fail: {shell: 'echo partial; exit 3'}
  signal: {shell: 'kill -9 $$'}
  big:
    shell: 'head -c 300000 /dev/zero | tr "\0" "a"; head -c 200000 /dev/zero | tr "\0" "b" >&2'
  bigjson:
    shell: 'printf "\""; head -c 140000 /dev/zero | tr "\0" "a"; printf "\""'
  ctl:
    shell: 'printf "\001\002\377\376"'
  tooBig:
    reply: {payload: 'repeat("x", 140000)'}
  badStatus:
    reply: {status: '42', payload: '1'}
  runtimeErr:
    reply: {payload: 'payload.a.b'}
  nan:
    reply: {payload: '0.0 / 0.0'}
  stdin:
    run: [cat]
  missing:
    run: [/nonexistent/program]
  cwd:
    run: [pwd]
`)
	cases := []struct {
		method, payload string
		status          int
		want            string
		contains        string
	}{
		{"json", ``, 200, `{"a":1}`, ""},
		{"text", ``, 200, `{"exitCode":0,"stdout":"hello\tworld","stderr":"oops"}`, ""},
		{"fail", ``, 500, `{"exitCode":3,"stdout":"partial\n","stderr":""}`, ""},
		{"signal", ``, 500, "", `"exitCode":137`},
		{"big", ``, 200, "", `"truncated":true`},
		{"bigjson", ``, 200, "", `"truncated":true`},
		{"ctl", ``, 200, `{"exitCode":0,"stdout":"\u0001\u0002\ufffd\ufffd","stderr":""}`, ""},
		{"tooBig", ``, 500, "", "over the 131072-byte limit"},
		{"badStatus", ``, 500, "", "outside 100..599"},
		{"runtimeErr", `{"a":1}`, 500, "", "reply.payload"},
		{"nan", ``, 500, "", "cannot encode"},
		{"stdin", `{"b": [true]}`, 200, `{"b":[true]}`, ""},
		{"stdin", ``, 200, `null`, ""},
		{"missing", ``, 500, "", "cannot start"},
		{"cwd", ``, 200, "", filepath.Dir(s.File())},
	}
	for _, c := range cases {
		t.Run(c.method, func(t *testing.T) {
			rep := call(t, s, c.method, c.payload)
			if rep.Status != c.status {
				t.Errorf("status: got %d, want %d (payload %.300s)", rep.Status, c.status, rep.Payload)
			}
			if c.want != "" && compactJSON(t, string(rep.Payload)) != compactJSON(t, c.want) {
				t.Errorf("payload:\ngot  %s\nwant %s", rep.Payload, c.want)
			}
			if c.contains != "" && !strings.Contains(string(rep.Payload), c.contains) {
				t.Errorf("payload %.300s does not contain %s", rep.Payload, c.contains)
			}
		})
	}
}

// TestSetAccessors checks the load results other packages read.
func TestSetAccessors(t *testing.T) {
	s := loadValid(t, "full.yaml")
	dir, _ := filepath.Abs("testdata/valid")
	c := s.Connection()
	want := Connection{ConnectionStringFile: filepath.Join(dir, "secrets/cs"), Transport: "mqtt-ws", CAFile: "/etc/methodd/ca.pem",
		CertFile: filepath.Join(dir, "dev.pem"), KeyFile: filepath.Join(dir, "dev.key"), SASTTL: 30 * time.Minute}
	if c != want {
		t.Errorf("Connection: got %+v, want %+v", c, want)
	}
	if d := s.Defaults(); d != (Defaults{Timeout: 5 * time.Second, Concurrency: 4, DuplicateWindow: DefaultDuplicateWindow}) {
		t.Errorf("Defaults: got %+v", d)
	}
	if got := strings.Join(s.Methods(), ","); got != "argv,echo,greet,health,info,script" {
		t.Errorf("Methods: got %s", got)
	}
	if !s.LoadedAt().Equal(time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)) {
		t.Errorf("LoadedAt: got %v", s.LoadedAt())
	}
	if len(s.Digest()) != 64 {
		t.Errorf("Digest: got %q", s.Digest())
	}
	minimal := loadValid(t, "minimal.yaml")
	if got := strings.Join(minimal.Methods(), ","); got != "catalog,ping" {
		t.Errorf("minimal Methods: got %s, want catalog,ping", got)
	}
	if c := minimal.Connection(); c.Transport != "mqtt" || c.SASTTL != time.Hour {
		t.Errorf("minimal Connection defaults: got %+v", c)
	}
}

// TestCatalog checks the built-in catalog's shape and the override rule.
func TestCatalog(t *testing.T) {
	s := mustParse(t, `
version: 1
methods:
  ping:
    description: my own ping
    reply: {payload: '"mine"'}
  set:
    description: Set a level
    params:
      level: {type: integer, required: true, min: 0, max: 9, description: the level}
      mode: {type: string, enum: [a, b], default: a}
    reply: {payload: params}
`)
	if rep := call(t, s, "ping", ""); string(rep.Payload) != `"mine"` {
		t.Errorf("config ping should override the built-in, got %s", rep.Payload)
	}
	rep := call(t, s, "catalog", "")
	want := `{"methods":[
	  {"name":"catalog","description":"` + catalogDescription + `","params":{}},
	  {"name":"ping","description":"my own ping","params":{}},
	  {"name":"set","description":"Set a level","params":{
	     "level":{"type":"integer","description":"the level","required":true,"min":0,"max":9},
	     "mode":{"type":"string","default":"a","enum":["a","b"]}}}],
	  "digest":"` + s.Digest() + `","loadedAt":"2026-01-02T03:04:05.000000006Z"}`
	if rep.Status != 200 || compactJSON(t, string(rep.Payload)) != compactJSON(t, want) {
		t.Errorf("catalog:\ngot  %s\nwant %s", rep.Payload, want)
	}
}

// TestUnknownMethodAlwaysListsMethods: the 404 carries "methods" even when
// the Set has none, and a list too long for one reply keeps what fits and
// says it was truncated.
func TestUnknownMethodAlwaysListsMethods(t *testing.T) {
	s := mustParse(t, "version: 1\nbuiltins: {ping: false, catalog: false}\nmethods: {}\n")
	rep := s.Call(context.Background(), Request{Method: "ping", RequestID: "1"})
	if rep.Status != 404 || string(rep.Payload) != `{"error":"unknown method \"ping\"","methods":[]}` {
		t.Errorf("got %d %s, want 404 with an empty methods list", rep.Status, rep.Payload)
	}

	names := make([]string, 3000)
	for i := range names {
		names[i] = fmt.Sprintf("method-%04d-%s", i, strings.Repeat("x", 100))
	}
	rep = unknownMethodReply("nope", names)
	var body struct {
		Methods   []string `json:"methods"`
		Truncated bool     `json:"truncated"`
	}
	if err := json.Unmarshal(rep.Payload, &body); err != nil || len(rep.Payload) > MaxReplyBytes {
		t.Fatalf("reply of %d bytes (%v), want valid JSON within %d", len(rep.Payload), err, MaxReplyBytes)
	}
	if !body.Truncated || len(body.Methods) == 0 || len(body.Methods) >= len(names) || body.Methods[0] != names[0] {
		t.Errorf("got %d of %d methods, truncated=%v; want a truncated prefix", len(body.Methods), len(names), body.Truncated)
	}
}
