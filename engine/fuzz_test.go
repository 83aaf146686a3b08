package engine

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
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
