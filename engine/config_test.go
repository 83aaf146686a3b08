package engine

import (
	"errors"
	"testing"
)

// TestConnectionTwin: connection.twin defaults to true and takes only a
// YAML boolean; anything else is a diagnostic at the value.
func TestConnectionTwin(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want bool
		diag string // the whole diagnostic, "" for a valid file
	}{
		{"no connection section", "version: 1\n", true, ""},
		{"connection without twin", "version: 1\nconnection: {transport: mqtt}\n", true, ""},
		{"true", "version: 1\nconnection:\n  twin: true\n", true, ""},
		{"false", "version: 1\nconnection:\n  twin: false\n", false, ""},
		{"integer", "version: 1\nconnection:\n  twin: 1\n", false, `h.yaml:3:9: connection.twin: must be true or false, got "1"`},
		{"string", "version: 1\nconnection:\n  twin: \"false\"\n", false, `h.yaml:3:9: connection.twin: must be true or false, got "false"`},
		{"null", "version: 1\nconnection:\n  twin:\n", false, `h.yaml:3:8: connection.twin: must be true or false, got empty (null)`},
		{"list", "version: 1\nconnection:\n  twin: [true]\n", false, `h.yaml:3:9: connection.twin: must be true or false, got a list`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Parse("h.yaml", []byte(tc.yaml), testOptions())
			if tc.diag != "" {
				var diags Diagnostics
				if !errors.As(err, &diags) || diags.Error() != tc.diag {
					t.Fatalf("got %v, want the diagnostic %s", err, tc.diag)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := s.Connection().Twin; got != tc.want {
				t.Errorf("Connection().Twin: got %v, want %v", got, tc.want)
			}
		})
	}
}
