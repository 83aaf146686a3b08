package engine

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
)

var jsonStringSeeds = []string{"", "plain", "quote\" back\\slash", "\n\r\t\x00\x1f", "é✓", "bad\xff\xfeutf8", "<&>", "\u2028",
	"ascii then é then \x01 then \xe2\x82 cut", "\xef\xbf\xbd is U+FFFD itself"}

func TestAppendJSONStringMatchesEncodingJSON(t *testing.T) {
	for _, c := range jsonStringSeeds {
		checkJSONString(t, c)
	}
}

// FuzzAppendJSONString: any string, valid UTF-8 or not, encodes to a JSON
// string that decodes as encoding/json's encoding does, at the length
// jsonStringLen predicts.
func FuzzAppendJSONString(f *testing.F) {
	for _, c := range jsonStringSeeds {
		f.Add(c)
	}
	f.Fuzz(checkJSONString)
}

func checkJSONString(t *testing.T, c string) {
	got := appendJSONString(nil, c)
	var back string
	if err := json.Unmarshal(got, &back); err != nil {
		t.Fatalf("%q: invalid JSON %s: %v", c, got, err)
	}
	want, _ := json.Marshal(c)
	var wantBack string
	_ = json.Unmarshal(want, &wantBack)
	if back != wantBack {
		t.Errorf("%q: decodes to %q, encoding/json gives %q", c, back, wantBack)
	}
	if n := jsonStringLen([]byte(c)); n != len(got) {
		t.Errorf("%q: jsonStringLen %d, encoded length %d", c, n, len(got))
	}
}

// TestCommandPayloadAlwaysFits: whatever the output (control bytes that
// expand 6x, invalid UTF-8, huge), the default reply is valid JSON within
// the limit and says when it was cut.
func TestCommandPayloadAlwaysFits(t *testing.T) {
	cases := map[string]procResult{
		"control bytes": {stdout: bytes.Repeat([]byte{1}, MaxReplyBytes), stderr: bytes.Repeat([]byte{2}, MaxReplyBytes)},
		"invalid utf8":  {stdout: bytes.Repeat([]byte{0xff}, MaxReplyBytes), exitCode: 1},
		"big stderr":    {stdout: []byte("ok"), stderr: bytes.Repeat([]byte("e"), MaxReplyBytes)},
		"json too big":  {stdout: append(append([]byte(`"`), bytes.Repeat([]byte("a"), MaxReplyBytes)...), '"')},
		"captured cut":  {stdout: []byte(`{"a":1}`), truncated: true},
	}
	for name, res := range cases {
		t.Run(name, func(t *testing.T) {
			p := commandPayload(&res)
			if !json.Valid(p) || len(p) > MaxReplyBytes {
				t.Fatalf("payload invalid or too big (%d bytes)", len(p))
			}
			if !strings.Contains(string(p), `"truncated":true`) {
				t.Errorf("payload does not say truncated: %.200s", p)
			}
		})
	}
	small := procResult{stdout: []byte("hi"), stderr: []byte("")}
	if p := string(commandPayload(&small)); p != `{"exitCode":0,"stdout":"hi","stderr":""}` {
		t.Errorf("small payload: got %s", p)
	}
}

// TestAppendJSONMatchesEncodingJSON: the fast encoder gives the same bytes
// as encoding/json (without HTML escaping) for JSON-shaped values.
func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	values := []any{nil, true, 0, -7, int64(1) << 60, 1.5, 1e21, 1e-7, 123456789.0, -0.000001, "s<&>",
		[]any{1.0, "x", nil, []any{}}, map[string]any{"b": 1, "a": map[string]any{"z": false, "\n": "\u0001"}},
		time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), json.RawMessage(`{"raw":true}`), struct{ X int }{3}, []string{"a"}}
	for _, v := range values {
		got, err := appendJSON(nil, v, 0)
		if err != nil {
			t.Errorf("%#v: %v", v, err)
			continue
		}
		want, _ := marshal(v)
		if string(got) != string(want) {
			t.Errorf("%#v:\ngot  %s\nwant %s", v, got, want)
		}
	}
	deep := any(nil)
	for range maxEncodeDepth + 2 {
		deep = []any{deep}
	}
	if _, err := appendJSON(nil, deep, 0); err == nil {
		t.Error("no error for a value nested too deeply")
	}
	if _, err := appendJSON(nil, math.NaN(), 0); err == nil {
		t.Error("no error for NaN")
	}
}

func TestLexTemplate(t *testing.T) {
	cases := []struct {
		in   string
		want string // parts joined by |, expressions in {}
		err  bool
	}{
		{"plain", "plain", false},
		{"${a}", "{a}", false},
		{"x-${a}-y", "x-|{a}|-y", false},
		{"$${a}", "${a}", false},
		{`${ {"k": "}"}.k }`, `{ {"k": "}"}.k }`, false},
		{"${'a}b'}", "{'a}b'}", false},
		{"$ and $x", "$ and $x", false},
		{"${a", "", true},
		{"${'a}", "", true},
	}
	for _, c := range cases {
		parts, err := lexTemplate(c.in)
		if (err != nil) != c.err {
			t.Errorf("%q: error %v, want error %v", c.in, err, c.err)
			continue
		}
		var got []string
		for _, p := range parts {
			if p.isExpr {
				got = append(got, "{"+p.text+"}")
			} else {
				got = append(got, p.text)
			}
		}
		if !c.err && strings.Join(got, "|") != c.want {
			t.Errorf("%q: got %q, want %q", c.in, strings.Join(got, "|"), c.want)
		}
	}
}

func TestSuggest(t *testing.T) {
	keys := []string{"description", "params", "timeout", "concurrency"}
	for in, want := range map[string]string{"timout": "timeout", "Params": "params", "concurency": "concurrency", "zzz": "", "descr": ""} {
		if got := suggest(in, keys); got != want {
			t.Errorf("suggest(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCheckMethodName(t *testing.T) {
	for _, ok := range []string{"ping", "get-Status_2", strings.Repeat("a", 128)} {
		if err := checkMethodName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a.b", "a/b", "a b", "$sys", "a+b", "a#b", "a?b", strings.Repeat("a", 129), "é"} {
		if err := checkMethodName(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestDiagnosticFormats(t *testing.T) {
	ds := Diagnostics{
		{File: "h.yaml", Line: 3, Col: 5, Path: "methods.x", Message: "boom", Severity: SeverityError},
		{File: "h.yaml", Line: 1, Col: 1, Path: "version", Message: "hmm", Severity: SeverityWarning},
	}
	ds.sort()
	if got := ds.Error(); got != "h.yaml:1:1: warning: hmm\nh.yaml:3:5: boom" {
		t.Errorf("Error(): got %q", got)
	}
	if !ds.HasErrors() || ds[:1].HasErrors() {
		t.Error("HasErrors wrong")
	}
	b, _ := json.Marshal(ds[1])
	if string(b) != `{"file":"h.yaml","line":3,"col":5,"path":"methods.x","message":"boom","severity":"error"}` {
		t.Errorf("JSON: %s", b)
	}
}

func TestLimiter(t *testing.T) {
	l := newLimiter(2)
	first, second, third := l.acquire(), l.acquire(), l.acquire()
	if !first || !second || third {
		t.Fatalf("acquire ×3 = %v, %v, %v; want true, true, false (limit 2)", first, second, third)
	}
	l.release()
	if !l.acquire() {
		t.Fatal("release did not free a slot")
	}
}
