package engine

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"unicode/utf8"
)

// FuzzParse feeds arbitrary bytes to the loader, seeded with every testdata
// file: it must never panic and must return either a Set or Diagnostics whose
// every entry has a position.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*/*.yaml")
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("version: 1\nmethods:\n  a: &x {reply: {payload: '1'}}\n  b: *x\n  c: {<<: *x}\n"))
	f.Add([]byte("version: 1\n---\nversion: 1\n"))
	f.Add([]byte("\x00\xff"))
	opts := testOptions()
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse("fuzz.yaml", data, opts)
		if err == nil {
			if s == nil {
				t.Fatal("nil Set without error")
			}
			return
		}
		if s != nil {
			t.Fatal("Set returned with an error")
		}
		var diags Diagnostics
		if !errors.As(err, &diags) || len(diags) == 0 {
			t.Fatalf("error is not Diagnostics: %v", err)
		}
		for _, d := range diags {
			if d.Line < 1 || d.Col < 1 || d.Message == "" {
				t.Fatalf("diagnostic without position or message: %+v", d)
			}
		}
	})
}

// FuzzCallPayload sends arbitrary payloads to an echo method, a method
// with an integer parameter and ping: a call never panics, invalid UTF-8 is
// always a 400, and an accepted echo keeps every number's digits.
func FuzzCallPayload(f *testing.F) {
	for _, s := range decodeSeeds {
		f.Add([]byte(s))
	}
	f.Add([]byte(`{"n":9007199254740993,"a":[12345678901234567890,-0,1e400]}`))
	f.Add([]byte("{\"n\":\"\xed\xa0\x80\"}"))
	s := mustParse(f, "version: 1\nmethods:\n  echo:\n    reply: {payload: payload}\n  int:\n    params: {n: {type: integer}}\n    reply: {payload: 'params.n'}\n")
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, m := range []string{"echo", "int", "ping"} {
			rep := s.Call(context.Background(), Request{Method: m, Payload: data})
			checkReply(t, rep)
			if !utf8.Valid(data) && rep.Status != 400 {
				t.Fatalf("%s %q: invalid UTF-8 got %d %s, want 400", m, data, rep.Status, rep.Payload)
			}
			if m == "echo" && rep.Status == 200 {
				want, err := decodeJSON(bytes.TrimSpace(data))
				if len(bytes.TrimSpace(data)) == 0 {
					want, err = nil, nil
				}
				got, gerr := decodeJSON(rep.Payload)
				if err != nil || gerr != nil || !reflect.DeepEqual(exactDigits(got), exactDigits(want)) {
					t.Fatalf("echo %q replied %s", data, rep.Payload)
				}
			}
		}
	})
}
