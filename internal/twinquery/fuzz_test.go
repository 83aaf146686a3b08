package twinquery

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// fuzzDoc is the fixed document FuzzParse matches parsed queries against.
const fuzzDoc = `{"deviceId":"d1","status":"enabled","version":3,"tags":{"site":"a","n":1.5,"b":true,"z":null,"arr":[1],"o":{"x":"y"}},
"properties":{"desired":{"$version":2},"reported":{"$version":5}},
"jobId":"j","outcome":{"deviceMethodResponse":{"status":200}}}`

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"SELECT * FROM devices",
		"select * from devices where deviceId = 'd1' OR deviceId = \"d2\"",
		"SELECT * FROM devices WHERE tags.site IN ['a','b'] AND NOT (version >= 0x10 OR tags.n < -1.5e2)",
		"SELECT * FROM devices WHERE IS_DEFINED(properties.desired.$version) AND tags.z = null",
		"SELECT * FROM devices.jobs WHERE devices.jobs.jobId = 'j'",
		"SELECT * FROM devices.modules WHERE moduleId NIN []",
		`SELECT * FROM devices WHERE tags.s = 'it\'s \u00e9\ud83d\ude00'`,
		"SELECT TOP 1 * FROM devices",
		"SELECT * FROM devices WHERE (((a = 1)",
		"SELECT * FROM devices WHERE a = 'unterminated",
		"deviceId IN ['a']",
		"*",
	} {
		f.Add(s)
	}
	d := json.NewDecoder(strings.NewReader(fuzzDoc))
	d.UseNumber()
	var doc map[string]any
	if err := d.Decode(&doc); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := Parse(s)
		checkFuzzResult(t, s, err, func() { q.Where().Match(doc) })
		c, err := ParseCondition(s)
		checkFuzzResult(t, s, err, func() { c.Match(doc) })
	})
}

// checkFuzzResult requires a *SyntaxError with a position inside s, or a
// result whose match runs (a panic fails the fuzz target by itself).
func checkFuzzResult(t *testing.T, s string, err error, match func()) {
	if err == nil {
		match()
		return
	}
	var se *SyntaxError
	if !errors.As(err, &se) {
		t.Fatalf("%q: error %T %v, want *SyntaxError", s, err, err)
	}
	if se.Pos < 0 || se.Pos > len(s) || se.Msg == "" {
		t.Fatalf("%q: bad SyntaxError pos %d msg %q", s, se.Pos, se.Msg)
	}
}
