package engine

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// decodeSeeds are inputs where JSON decoders commonly differ.
var decodeSeeds = []string{
	``, ` `, `null`, `true`, `false`, `nul`, `truex`, `1`, `-0`, `-`, `01`, `1.`, `.5`, `1.5e3`, `1E+2`, `1e-2`,
	`1e`, `1e+`, `1e400`, `-1e400`, `1e-400`, `123456789012345678901234567890`, `0.1e1`,
	`""`, `"abc"`, `"a\"b\\c\/d\b\f\n\r\t"`, `"\u00e9\u20AC"`, `"\ud83d\ude00"`, `"\ud800"`, `"\udc00\ud800"`,
	`"\ud800\u0041"`, `"\ud800x"`, `"\ud800\ud800\udc00"`, `"\u12"`, `"\x"`, "\"raw\x01ctl\"", "\"bad\xffutf8\"",
	"\"é✓\"", `"unterminated`, `"\`,
	`[]`, `[1,2,3]`, `[1,]`, `[,1]`, `[1 2]`, ` [ 1 , "x" , null ] `, `[`, `]`,
	`{}`, `{"a":1,"a":2}`, `{"a":{"b":[{}]}}`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{1:2}`, `{"a":1 "b":2}`, `{`,
	`{"\ud800":"k"}`, "{\"k\xff\":1}", `1 2`, `{} x`, "\t\n\r 7 \n",
}

func TestDecodeJSONMatchesEncodingJSON(t *testing.T) {
	for _, s := range decodeSeeds {
		checkDecodeLikeEncodingJSON(t, []byte(s))
	}
	for _, depth := range []int{maxJSONDepth, maxJSONDepth + 1} {
		arrays := strings.Repeat("[", depth) + strings.Repeat("]", depth)
		checkDecodeLikeEncodingJSON(t, []byte(arrays))
		objects := strings.Repeat(`{"a":`, depth) + "1" + strings.Repeat("}", depth)
		checkDecodeLikeEncodingJSON(t, []byte(objects))
	}
}

// FuzzDecodeJSON: decodeJSON never panics; it refuses what json.Unmarshal
// refuses and, with a *payloadError, what encoding/json would alter
// (invalid UTF-8, lone surrogates: checkPayloadText); otherwise it yields
// json.Unmarshal's value except that integers beyond ±2^53 keep their
// digits; and what it accepts re-encodes to the same value, digits
// included.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range decodeSeeds {
		f.Add([]byte(s))
	}
	f.Add([]byte(`[9007199254740993,-9007199254740993,{"c":18446744073709551616},9007199254740992,-0]`))
	f.Add([]byte("\"\xc0\xaf\xed\xa0\x80\xf4\x90\x80\x80\""))
	f.Fuzz(checkDecodeLikeEncodingJSON)
}

func checkDecodeLikeEncodingJSON(t *testing.T, data []byte) {
	got, gerr := decodeJSON(data)
	var pe *payloadError
	switch {
	case !json.Valid(data):
		if gerr == nil {
			t.Fatalf("%.200q: decodeJSON accepts invalid JSON: %#v", data, got)
		}
		return
	case checkPayloadText(data) != nil || !utf8.Valid(data):
		if !errors.As(gerr, &pe) {
			t.Fatalf("%.200q: decodeJSON error %v, want a payloadError (%v)", data, gerr, checkPayloadText(data))
		}
		return
	}
	want, ok := referenceDecode(t, data)
	if !ok {
		if !errors.As(gerr, &pe) || !strings.Contains(pe.What, "out of range") {
			t.Fatalf("%.200q: decodeJSON error %v, want a number out of range", data, gerr)
		}
		return
	}
	if gerr != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("%.200q: decodeJSON gives %#v (%v), want %#v", data, got, gerr, want)
	}
	enc, err := appendJSON(nil, got, 0)
	if err != nil {
		if errors.Is(err, errTooDeep) {
			return
		}
		t.Fatalf("%.200q: re-encoding: %v", data, err)
	}
	again, err := decodeJSON(enc)
	if err != nil || !reflect.DeepEqual(exactDigits(again), exactDigits(got)) {
		t.Fatalf("%.200q: re-encoded as %.200q, which decodes to %#v (%v)", data, enc, again, err)
	}
}

// exactDigits replaces every number by its exact decimal digits, so that
// 1e20 (a float64) and 100000000000000000000 (json.Number) compare equal.
func exactDigits(v any) any {
	switch x := v.(type) {
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case json.Number:
		return string(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = exactDigits(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = exactDigits(e)
		}
		return out
	}
	return v
}

// referenceDecode is json.Unmarshal under the number contract: digit-only
// literals beyond ±2^53 stay json.Number, other numbers are float64. It
// reports false for a number out of float64's range.
func referenceDecode(t *testing.T, data []byte) (any, bool) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("%.200q: valid JSON fails to decode: %v", data, err)
	}
	return numbersByContract(v)
}

func numbersByContract(v any) (any, bool) {
	switch x := v.(type) {
	case json.Number:
		s := strings.TrimPrefix(string(x), "-")
		if !strings.ContainsAny(s, ".eE") {
			if n, err := strconv.ParseInt(string(x), 10, 64); err != nil || n > maxExactInt || n < -maxExactInt {
				return x, true
			}
		}
		f, err := strconv.ParseFloat(string(x), 64)
		return f, err == nil
	case []any:
		for i, e := range x {
			var ok bool
			if x[i], ok = numbersByContract(e); !ok {
				return nil, false
			}
		}
	case map[string]any:
		for k, e := range x {
			var ok bool
			if x[k], ok = numbersByContract(e); !ok {
				return nil, false
			}
		}
	}
	return v, true
}

func BenchmarkDecodeJSON(b *testing.B) {
	payload := []byte(`{"id":"call-000123","n":42,"tags":["a","b"],"pad":"` + strings.Repeat("x", 8<<10) + `"}`)
	b.Run("encoding/json", func(b *testing.B) {
		b.SetBytes(int64(len(payload)))
		for b.Loop() {
			var v any
			if err := json.Unmarshal(payload, &v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decodeJSON", func(b *testing.B) {
		b.SetBytes(int64(len(payload)))
		for b.Loop() {
			if _, err := decodeJSON(payload); err != nil {
				b.Fatal(err)
			}
		}
	})
}
