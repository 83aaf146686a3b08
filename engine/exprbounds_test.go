package engine

import (
	"encoding/json"
	goruntime "runtime"
	"strings"
	"testing"
	"time"
)

// bigPayload is the ~120 KB call of issue 19: one string field.
func bigPayload() string {
	return `{"s":"` + strings.Repeat("a", 120<<10) + `"}`
}

// TestExpressionBytesBudget: every way an expression builds a big string
// or array is refused with a 500 naming the budget, and the call allocates
// a bounded amount of memory (before issue 19 each of these allocated
// tens to hundreds of MB; a longer chain killed the daemon).
func TestExpressionBytesBudget(t *testing.T) {
	cases := []struct{ name, expr string }{
		{"replace chain", `replace(replace(replace(payload.s, "a", "aaaaaaaaaa"), "a", "aaaaaaaaaa"), "a", "aaaaaaaaaa")`},
		{"join of map", `join(map(1..1000, payload.s), payload.s)`},
		{"plus chain", strings.TrimSuffix(strings.Repeat("payload.s + ", 20), " + ")},
		{"repeat", `repeat(payload.s, 1000)`},
		{"toJSON of map", `len(toJSON(map(1..2000, payload.s)))`},
		{"string of map", `len(string(map(1..2000, payload.s)))`},
		{"map of upper", `len(map(1..1000, upper(payload.s)))`},
		{"let doubling", `let a = payload.s + payload.s; let b = a + a; let c = b + b; let d = c + c; len(d + d)`},
		{"reply of refs", `map(1..2000, payload.s)`},
		{"concat", `let a = 1..300000; len(concat(a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a))`},
	}
	p := bigPayload()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := mustParse(t, "version: 1\nmethods:\n  m:\n    reply:\n      payload: '"+c.expr+"'\n")
			before, start := totalAlloc(), time.Now()
			rep := call(t, s, "m", p)
			alloc := totalAlloc() - before
			t.Logf("%d in %s, %d KB allocated", rep.Status, time.Since(start), alloc>>10)
			if rep.Status != 500 || !strings.Contains(string(rep.Payload), "budget") {
				t.Errorf("got %d %.200s, want 500 naming the budget", rep.Status, rep.Payload)
			}
			if alloc > 48<<20 {
				t.Errorf("the call allocated %d MB, want at most 48", alloc>>20)
			}
		})
	}
}

// TestExpressionBudgetKeepsOrdinaryWork: ordinary expressions over the
// largest payload still work.
func TestExpressionBudgetKeepsOrdinaryWork(t *testing.T) {
	cases := []struct{ expr, want string }{
		{`len(upper(payload.s) + lower(payload.s))`, "245760"},
		{`len(replace(payload.s, "a", "bb"))`, "245760"},
		{`len(join(split(payload.s, ""), ","))`, "245759"},
		{`len(toJSON(payload))`, "122893"},
		{`sum(map(1..1000, # * 2))`, "1001000"},
		{`len(fromJSON(toJSON(payload)).s)`, "122880"},
	}
	p := bigPayload()
	for _, c := range cases {
		s := mustParse(t, "version: 1\nmethods:\n  m:\n    reply:\n      payload: '"+c.expr+"'\n")
		rep := call(t, s, "m", p)
		if rep.Status != 200 || string(rep.Payload) != c.want {
			t.Errorf("%s: got %d %.200s, want 200 %s", c.expr, rep.Status, rep.Payload, c.want)
		}
	}
}

func totalAlloc() uint64 {
	var ms goruntime.MemStats
	goruntime.ReadMemStats(&ms)
	return ms.TotalAlloc
}

// TestExpressionTimeLimit: an expression that loops for long is stopped at
// its time limit with a 500, in every place expressions run, and no CPU
// is burnt after the reply.
func TestExpressionTimeLimit(t *testing.T) {
	const loop = `let a = 1..500; sum(a, sum(a, sum(a, #)))`
	cases := []struct{ name, yaml string }{
		{"reply.payload", "    reply: {payload: '" + loop + "'}\n"},
		{"reply.status", "    reply: {status: '" + loop + " > 0 ? 200 : 201'}\n"},
		{"when", "    when: '" + loop + " > 0'\n    reply: {payload: '1'}\n"},
		{"run template", "    run: [echo, '${" + loop + "}']\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := mustParse(t, "version: 1\nmethods:\n  m:\n"+c.yaml)
			// A clock that advances 1 ms at every reading: the limit of 1 s
			// passes at the 1001st, whatever this machine's speed.
			var reads int
			start := time.Unix(0, 0)
			s.eval.clock = func() time.Time { reads++; return start.Add(time.Duration(reads) * time.Millisecond) }
			before := goruntime.NumGoroutine()
			rep := call(t, s, "m", "null")
			if rep.Status != 500 || !strings.Contains(string(rep.Payload), "time limit") {
				t.Errorf("got %d %s, want 500 naming the time limit", rep.Status, rep.Payload)
			}
			// Stopped at the first reading past the limit (the loop
			// would run 1.25e8 steps), not before, not long after.
			if want := int(exprTimeLimit/time.Millisecond) + 1; reads < want || reads > want+1 {
				t.Errorf("the clock was read %d times, want the evaluation to stop at reading %d", reads, want)
			}
			// The evaluation ran in the call's goroutine: nothing is left
			// running once the reply is out.
			if after := goruntime.NumGoroutine(); after > before {
				t.Errorf("%d goroutines after the reply, %d before", after, before)
			}
		})
	}
}

// TestPayloadNumbersExact: integers beyond ±2^53 keep their digits from
// payload to reply, are exact in integer params (or a 400 naming the field
// beyond int64), and arithmetic on them fails loudly.
func TestPayloadNumbersExact(t *testing.T) {
	s := mustParse(t, `version: 1
methods:
  echo:
    reply: {payload: payload}
  tpl:
    run: [echo, '${payload.a}', '${payload}']
  add:
    reply: {payload: 'payload.a + 1'}
  param:
    params:
      n: {type: integer, required: true}
    reply: {payload: 'params.n'}
`)
	const big = `{"a":12345678901234567890,"b":[9007199254740993,-9007199254740993,{"c":18446744073709551616}],"d":-0,"e":1.5,"f":9007199254740992,"g":1e300}`
	echoCases := []struct{ in, want string }{
		{big, strings.Replace(big, "1e300", "1e+300", 1)}, // the same value, encoding/json's spelling
		{`12345678901234567890`, `12345678901234567890`},
		{`-123456789012345678901234567890`, `-123456789012345678901234567890`},
	}
	for _, c := range echoCases {
		if rep := call(t, s, "echo", c.in); rep.Status != 200 || string(rep.Payload) != c.want {
			t.Errorf("echo %s: got %d %s, want 200 %s", c.in, rep.Status, rep.Payload, c.want)
		}
	}
	rep := call(t, s, "tpl", `{"a":12345678901234567890}`)
	if want := `12345678901234567890 {\"a\":12345678901234567890}`; rep.Status != 200 || !strings.Contains(string(rep.Payload), want) {
		t.Errorf("template: got %d %s, want stdout %s", rep.Status, rep.Payload, want)
	}
	if rep := call(t, s, "add", `{"a":9007199254740993}`); rep.Status != 500 || !strings.Contains(string(rep.Payload), "2^53") {
		t.Errorf("arithmetic on a big integer: got %d %s, want 500 explaining the exact integer", rep.Status, rep.Payload)
	}
	paramCases := []struct {
		in     string
		status int
		want   string
	}{
		{`{"n":9007199254740993}`, 200, `9007199254740993`},
		{`{"n":-9223372036854775808}`, 200, `-9223372036854775808`},
		{`{"n":9223372036854775808}`, 400, `"param":"n"`},
		{`{"n":12345678901234567890}`, 400, `"param":"n"`},
		{`{"n":1e400}`, 400, `out of range`},
		{`{"n":2.5}`, 400, `"param":"n"`},
	}
	for _, c := range paramCases {
		rep := call(t, s, "param", c.in)
		if rep.Status != c.status || !strings.Contains(string(rep.Payload), c.want) {
			t.Errorf("param %s: got %d %s, want %d with %s", c.in, rep.Status, rep.Payload, c.status, c.want)
		}
	}
}

// TestPayloadUTF8: a payload that is not valid UTF-8 (or escapes a lone
// surrogate) is refused with 400 at its byte offset, whatever the method.
func TestPayloadUTF8(t *testing.T) {
	s := mustParse(t, `version: 1
methods:
  expr:
    reply: {payload: payload}
  cmd:
    run: [cat]
  quiet:
    reply: {payload: '1'}
`)
	cases := []struct{ in, want string }{
		{"\"\xff\"", "payload is not valid UTF-8 at byte 1"},
		{"{\"a\": \"ok \xc0\xaf\"}", "payload is not valid UTF-8 at byte 10"},
		{"  [\"\xed\xa0\x80\"]", "payload is not valid UTF-8 at byte 4"},
		{`{"a":"\ud800"}`, `payload has a lone UTF-16 surrogate \\ud800 at byte 6`},
		{`["x\udc00\ud800"]`, `lone UTF-16 surrogate \\udc00 at byte 3`},
	}
	for _, method := range []string{"expr", "cmd", "quiet", "ping"} {
		for _, c := range cases {
			rep := call(t, s, method, c.in)
			var body struct{ Error string }
			_ = json.Unmarshal(rep.Payload, &body)
			if rep.Status != 400 || !strings.Contains(string(rep.Payload), c.want) {
				t.Errorf("%s %q: got %d %s, want 400 %s", method, c.in, rep.Status, rep.Payload, c.want)
			}
		}
	}
	if rep := call(t, s, "expr", `["\ud83d\ude00","é"]`); rep.Status != 200 || string(rep.Payload) != `["😀","é"]` {
		t.Errorf("a surrogate pair: got %d %s", rep.Status, rep.Payload)
	}
}
