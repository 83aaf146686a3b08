package twindoc

import (
	"strings"
	"testing"
)

// docsDepth10 is the docs' valid example of the deepest allowed nesting.
const docsDepth10 = `{"one":{"two":{"three":{"four":{"five":{"six":{"seven":{"eight":{"nine":{"ten":{"property":"value"}}}}}}}}}}}`

// depth11 nests one object more than docsDepth10.
var depth11 = strings.Replace(docsDepth10, `"property":"value"`, `"eleven":{"property":"value"}`, 1)

// fill returns an object of n members "k0".."k<n-1>", each a string of
// size bytes (the keys are 2 bytes while n ≤ 10).
func fill(n, size int) string {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`"k` + itoa(i) + `":"` + strings.Repeat("x", size) + `"`)
	}
	return b.String() + "}"
}

// richTwin is a twin with something in every section, so that "unchanged"
// means something: tags of size 15, desired 20 and reported 8.
func richTwin(t testing.TB) *Twin {
	t.Helper()
	tw := New(t0)
	mustUpdate(t, tw, `{"tags":{"site":"a","n":{"m":1}},"properties":{"desired":{"d":{"e":[1,"2"]},"f":1.5}}}`, false, at(1))
	mustPatch(t, tw, `{"r":{"s":true},"u":null,"v":"w"}`, at(2))
	return tw
}

var (
	long1025 = strings.Repeat("k", 1025)
	str4097  = strings.Repeat("s", 4097)
)

// badValues are object members that break a rule in any section; msg is
// part of the message the error must carry, after the section's name.
var badValues = []struct {
	name, member, msg string
}{
	{"dot in key", `"a":{"b.c":1}`, `.a.b.c: key contains '.'`},
	{"dollar in key", `"$a":1`, `.$a: key contains '$'`},
	{"dollar deep", `"a":{"$metadata":1}`, `.a.$metadata: key contains '$'`},
	{"space in key", `"a b":1`, `.a b: key contains a space`},
	{"C0 control in key", `"a\u0001":1`, `.a\u0001: key contains a control character`},
	{"C1 control in key", `"a\u0085":1`, `.a\u0085: key contains a control character`},
	{"DEL in key", `"a\u007f":1`, `.a\u007f: key contains a control character`},
	{"empty key", `"":1`, `."": key is empty`},
	{"1025-byte key", `"` + long1025 + `":1`, "." + long1025[:64] + "…: key is 1025 bytes, more than 1024"},
	{"key in an array's object", `"a":[1,{"b c":2}]`, `.a[1].b c: key contains a space`},
	{"4097-byte string", `"s":"` + str4097 + `"`, `.s: string is 4097 bytes, more than 4096`},
	{"4097-byte string in array", `"s":["` + str4097 + `"]`, `.s[0]: string is 4097 bytes`},
	{"integer above MaxInt", `"i":4503599627370496`, `.i: integer 4503599627370496 is outside -4503599627370496..4503599627370495`},
	{"integer below MinInt", `"i":-4503599627370497`, `.i: integer -4503599627370497 is outside`},
	{"integer beyond int64", `"i":1` + strings.Repeat("0", 100), `.i: integer 1000000000`},
	{"depth 11", depth11[1 : len(depth11)-1], `.one.two.three.four.five.six.seven.eight.nine.ten.eleven: objects nested more than 10 levels`},
	{"depth 11 through an array", `"one":{"two":{"three":{"four":{"five":{"six":{"seven":{"eight":{"nine":{"ten":{"a":[{"x":1}]}}}}}}}}}}`, `.one.two.three.four.five.six.seven.eight.nine.ten.a[0]: objects nested more than 10 levels`},
}

// malformed are bodies that are no JSON object at all.
var malformed = []struct {
	name, body, msg string
}{
	{"empty", ``, `not valid JSON`},
	{"space", ` `, `not valid JSON`},
	{"truncated", `{"a":`, `not valid JSON`},
	{"missing value", `{"a":}`, `not valid JSON`},
	{"trailing data", `{"a":1}x`, `not valid JSON`},
	{"two values", `{}{}`, `not valid JSON`},
	{"invalid UTF-8", "{\"a\":\"\xff\"}", `not valid JSON: not valid UTF-8`},
	{"duplicate member", `{"a":1,"a":2}`, `not valid JSON: duplicate member a`},
	{"array", `[]`, `not a JSON object`},
	{"number", `1`, `not a JSON object`},
	{"string", `"x"`, `not a JSON object`},
	{"null", `null`, `not a JSON object`},
}

// TestPatchReportedInvalid: every broken rule is a 400004 naming it, and
// the twin is left byte-identical.
func TestPatchReportedInvalid(t *testing.T) {
	type tc struct{ name, patch, msg string }
	var tests []tc
	for _, b := range badValues {
		tests = append(tests, tc{b.name, `{"ok":1,` + b.member + `}`, "properties.reported" + b.msg})
	}
	for _, m := range malformed {
		tests = append(tests, tc{m.name, m.body, "properties.reported: patch is " + m.msg})
	}
	tests = append(tests,
		tc{"$version at the top", `{"$version":3}`, `properties.reported.$version: key contains '$'`},
		tc{"over the size limit", fill(9, 4000), `properties.reported: size would be 36026 bytes, more than the limit of 32768`},
	)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tw := richTwin(t)
			before := state(t, tw)
			v, err := tw.PatchReported([]byte(tt.patch), at(9))
			wantInvalid(t, err, tt.msg)
			if v != 0 {
				t.Errorf("got version %d with an error, want 0", v)
			}
			if got := state(t, tw); got != before {
				t.Errorf("got state %s, want unchanged %s", got, before)
			}
		})
	}
}

// TestUpdateInvalid: the same rules for tags and desired, and the body's
// shape, in PATCH and PUT alike.
func TestUpdateInvalid(t *testing.T) {
	type tc struct{ name, body, msg, putMsg string } // putMsg "": as msg
	var tests []tc
	for _, b := range badValues {
		tests = append(tests,
			tc{"tags " + b.name, `{"tags":{"ok":1,` + b.member + `}}`, "tags" + b.msg, ""},
			tc{"desired " + b.name, `{"properties":{"desired":{"ok":1,` + b.member + `}}}`, "properties.desired" + b.msg, ""})
	}
	for _, m := range malformed {
		tests = append(tests, tc{m.name, m.body, "twin body is " + m.msg, ""})
	}
	tests = append(tests,
		tc{"desired a string", `{"properties":{"desired":"x"}}`, `properties.desired: not a JSON object`, ""},
		tc{"desired null", `{"properties":{"desired":null}}`, `properties.desired: not a JSON object`, ""},
		tc{"tags an array", `{"tags":[]}`, `tags: not a JSON object`, ""},
		tc{"tags null", `{"tags":null}`, `tags: not a JSON object`, ""},
		tc{"properties a number", `{"properties":1}`, `properties: not a JSON object`, ""},
		tc{"unknown properties member", `{"properties":{"desried":{}}}`, `properties.desried: unknown member`, ""},
		tc{"other $ key at the top", `{"properties":{"desired":{"$foo":1}}}`, `properties.desired.$foo: key contains '$'`, ""},
		tc{"desired over the size limit", `{"properties":{"desired":` + fill(9, 4000) + `}}`, `properties.desired: size would be 36038 bytes, more than the limit of 32768`,
			`properties.desired: size would be 36018 bytes, more than the limit of 32768`},
		tc{"tags over the size limit", `{"tags":` + fill(3, 4000) + `}`, `tags: size would be 12021 bytes, more than the limit of 8192`,
			`tags: size would be 12006 bytes, more than the limit of 8192`},
		tc{"valid tags, bad desired", `{"tags":{"x":1},"properties":{"desired":{"a.b":1}}}`, `properties.desired.a.b: key contains '.'`, ""},
		tc{"valid desired, tags too big", `{"tags":` + fill(3, 4000) + `,"properties":{"desired":{"x":1}}}`, `tags: size would be`, ""},
	)
	for _, replace := range []bool{false, true} {
		for _, tt := range tests {
			t.Run(tt.name+map[bool]string{false: " PATCH", true: " PUT"}[replace], func(t *testing.T) {
				tw := richTwin(t)
				before := state(t, tw)
				c, err := tw.Update([]byte(tt.body), replace, at(9))
				msg := tt.msg
				if replace && tt.putMsg != "" {
					msg = tt.putMsg
				}
				wantInvalid(t, err, msg)
				if c.Desired != nil || c.DesiredVersion != 0 {
					t.Errorf("got change %s/%d with an error, want the zero Change", c.Desired, c.DesiredVersion)
				}
				if got := state(t, tw); got != before {
					t.Errorf("got state %s, want unchanged %s", got, before)
				}
			})
		}
	}
}

// TestLimitBoundaries: values exactly at each limit are accepted in every
// section.
func TestLimitBoundaries(t *testing.T) {
	tests := []struct{ name, object string }{
		{"docs' depth-10 example", docsDepth10},
		{"depth 10 through an array", `{"one":{"two":{"three":{"four":{"five":{"six":{"seven":{"eight":{"nine":{"ten":[{"x":[1,[2]]}]}}}}}}}}}}`},
		{"1024-byte key", `{"` + strings.Repeat("k", 1024) + `":1}`},
		{"4096-byte string", `{"s":"` + strings.Repeat("s", 4096) + `"}`},
		{"4096 bytes of multi-byte runes", `{"s":"` + strings.Repeat("é", 2048) + `"}`},
		{"MaxInt and MinInt", `{"max":4503599627370495,"min":-4503599627370496}`},
		{"floats of any size", `{"f":4503599627370496.0,"g":-1e400,"h":1E-400,"z":-0}`},
		{"unicode and punctuation in keys", `{"ключ":1,"a-b_c:d@e/f#g":2,"ümlaut\u00a0nbsp":3}`},
		{"all value types", `{"b":false,"n":null,"a":[],"o":{},"s":""}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tw := New(t0)
			if _, err := tw.PatchReported([]byte(tt.object), at(1)); err != nil {
				t.Errorf("reported: got %v, want success", err)
			}
			if _, err := tw.Update([]byte(`{"properties":{"desired":`+tt.object+`}}`), false, at(1)); err != nil {
				t.Errorf("desired: got %v, want success", err)
			}
			if _, err := tw.Update([]byte(`{"tags":`+tt.object+`}`), true, at(1)); err != nil {
				t.Errorf("tags: got %v, want success", err)
			}
		})
	}
}

// TestSizeAccounting works one example of §1.7's size rule by hand.
func TestSizeAccounting(t *testing.T) {
	// a: 1 + 5 ("hello")                                = 6
	// bb: 2 + 8 (number)                                = 10
	// c: 1 + 4 (boolean)                                = 5
	// d: 1 + (e: 1 + 2, "x\u0001y" minus the control)   = 4
	// f: 1 + (8 + 2 + 0 + 4) (number, "ab", null, bool) = 15
	// g: 1 + 2 ("é", two UTF-8 bytes)                   = 3
	// h: 1 + 0 ("\u0085" is a C1 control character)     = 1
	// total                                             = 44
	tw := New(t0)
	mustPatch(t, tw, `{"a":"hello","bb":12,"c":true,"d":{"e":"x\u0001y"},"f":[1,"ab",null,false],"g":"é","h":"\u0085"}`, at(1))
	if got := tw.reported.size; got != 44 {
		t.Errorf("got size %d, want 44", got)
	}
	mustPatch(t, tw, `{"a":null,"d":{"e":null}}`, at(2))
	if got := tw.reported.size; got != 44-6-3 {
		t.Errorf("after deletes: got size %d, want %d", got, 44-6-3)
	}
}

// TestSizeLimit: a section may be filled exactly to its limit; growing it
// further is refused, and writes that do not grow it still succeed.
func TestSizeLimit(t *testing.T) {
	tw := New(t0)
	mustPatch(t, tw, fill(8, 4094), at(1)) // 8 × (2 + 4094) = 32768
	if tw.reported.size != MaxReportedBytes {
		t.Fatalf("got size %d, want %d", tw.reported.size, MaxReportedBytes)
	}
	_, err := tw.PatchReported([]byte(`{"i":true}`), at(2))
	wantInvalid(t, err, "properties.reported: size would be 32773 bytes, more than the limit of 32768")
	mustPatch(t, tw, `{"k0":"`+strings.Repeat("y", 4094)+`"}`, at(3))
	mustPatch(t, tw, `{"k0":1,"i":true}`, at(4)) // 32768 - 4096 + 10 + 5
	mustUpdate(t, tw, `{"tags":`+fill(2, 4094)+`}`, false, at(5))
	if _, err := tw.Update([]byte(`{"tags":{"z":1}}`), false, at(6)); err == nil {
		t.Errorf("tags above 8192: got success, want an error")
	}
	mustUpdate(t, tw, `{"properties":{"desired":`+fill(8, 4094)+`}}`, true, at(7))
}

// TestCheckSizeShrinking: a section already above its limit (a state from a
// laxer hub) may still be written as long as the write does not grow it.
func TestCheckSizeShrinking(t *testing.T) {
	tests := []struct {
		name          string
		before, after int
		wantErr       bool
	}{
		{"under", 100, 200, false},
		{"at the limit", 100, 1000, false},
		{"over, growing", 100, 1001, true},
		{"over, shrinking", 2000, 1500, false},
		{"over, same size", 1500, 1500, false},
		{"over, growing from over", 1500, 1501, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkSize("s", &node{size: tt.before}, &node{size: tt.after}, 1000)
			if got := err != nil; got != tt.wantErr {
				t.Errorf("got error %v, want error %v", err, tt.wantErr)
			}
		})
	}
}

// TestMessagesClipValues: messages quote at most 64 bytes of a key or value.
func TestMessagesClipValues(t *testing.T) {
	tw := New(t0)
	key := strings.Repeat("K", 2000)
	_, err := tw.PatchReported([]byte(`{"`+key+`":1}`), at(1))
	wantInvalid(t, err, "properties.reported."+strings.Repeat("K", 64)+"…: key is 2000 bytes")
	_, err = tw.PatchReported([]byte(`{"i":-`+strings.Repeat("9", 3000)+`}`), at(1))
	wantInvalid(t, err, "properties.reported.i: integer -"+strings.Repeat("9", 63)+"… is outside")
}
