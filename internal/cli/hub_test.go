package cli

import (
	"bytes"
	"strings"
	"testing"
)

// TestHubCommandUsage: flag and argument errors exit 2 before anything
// starts (the hub would otherwise bind the default ports).
func TestHubCommandUsage(t *testing.T) {
	cases := []struct {
		name string
		args []string
		env  map[string]string
	}{
		{"bad log format", []string{"hub", "--dir", t.TempDir(), "--log-format", "xml"}, nil},
		{"bad log level", []string{"hub", "--dir", t.TempDir(), "--log-level", "loud"}, nil},
		{"extra argument", []string{"hub", "--dir", t.TempDir(), "extra"}, nil},
		{"unknown flag", []string{"hub", "--nope"}, nil},
		{"no state dir", []string{"hub"}, map[string]string{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			s := Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Getenv: func(k string) string { return tc.env[k] }}
			if code := Run(t.Context(), tc.args, s); code != exitUsage {
				t.Errorf("exit %d, want %d; stderr %s", code, exitUsage, errb.String())
			}
		})
	}
}
