package engine

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
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

// FuzzDecodeJSON: decodeJSON accepts exactly what json.Unmarshal accepts
// and yields the same value.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range decodeSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(checkDecodeLikeEncodingJSON)
}

func checkDecodeLikeEncodingJSON(t *testing.T, data []byte) {
	var want any
	werr := json.Unmarshal(data, &want)
	got, gerr := decodeJSON(data)
	if (werr == nil) != (gerr == nil) {
		t.Fatalf("%.200q: decodeJSON error %v, json.Unmarshal error %v", data, gerr, werr)
	}
	if werr == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("%.200q: decodeJSON gives %#v, json.Unmarshal %#v", data, got, want)
	}
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
