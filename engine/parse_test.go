package engine

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden diagnostics files in testdata")

// testOptions is a fixed, hermetic environment for loading test files.
func testOptions() Options {
	return Options{
		Environ: func() []string {
			return []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/root", "LANG=C.UTF-8", "SECRET=s3cr3t"}
		},
		Now:      func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC) },
		Hostname: func() (string, error) { return "gw-test", nil },
		Uptime:   func() (time.Duration, error) { return 90 * time.Minute, nil },
	}
}

// TestParseInvalid loads every testdata/invalid file: each must fail with
// exactly the diagnostics of its .golden file.
func TestParseInvalid(t *testing.T) {
	files, _ := filepath.Glob("testdata/invalid/*.yaml")
	if len(files) < 12 {
		t.Fatalf("found %d invalid files, want at least 12", len(files))
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			set, err := Parse(file, data, testOptions())
			if set != nil {
				t.Fatalf("Parse returned a Set for an invalid file")
			}
			var diags Diagnostics
			if !errors.As(err, &diags) {
				t.Fatalf("got error %v (%T), want Diagnostics", err, err)
			}
			for _, d := range diags {
				if d.Line < 1 || d.Col < 1 || d.File != file {
					t.Errorf("diagnostic without a position: %+v", d)
				}
			}
			got := diags.Error() + "\n"
			golden := strings.TrimSuffix(file, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("diagnostics differ from %s\ngot:\n%swant:\n%s", golden, got, want)
			}
		})
	}
}

// TestParseValid loads every testdata/valid file: each must load without
// errors; its warnings must equal its .golden file (absent = none).
func TestParseValid(t *testing.T) {
	files, _ := filepath.Glob("testdata/valid/*.yaml")
	if len(files) == 0 {
		t.Fatal("no valid test files")
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			set, err := Parse(file, data, testOptions())
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			got := ""
			if w := set.Warnings(); len(w) > 0 {
				got = w.Error() + "\n"
			}
			golden := strings.TrimSuffix(file, ".yaml") + ".golden"
			if *update && got != "" {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, _ := os.ReadFile(golden)
			if got != string(want) {
				t.Errorf("warnings differ from %s\ngot:\n%swant:\n%s", golden, got, want)
			}
		})
	}
}
