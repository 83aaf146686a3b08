package engine

import (
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// TestDuration: a YAML duration is a Go duration string or a plain number
// of seconds (int or float); zero, negatives, quoted numbers, garbage,
// infinities and numbers past time.Duration's range are diagnostics at
// the value's position, never a wrap-around.
func TestDuration(t *testing.T) {
	good := []struct {
		yaml string
		want time.Duration
	}{
		{"60", time.Minute},
		{"1.5", 1500 * time.Millisecond},
		{"0.25", 250 * time.Millisecond},
		{"1e3", 1000 * time.Second},
		{"60s", time.Minute},
		{"1m30s", 90 * time.Second},
		{"500ms", 500 * time.Millisecond},
		{`"10s"`, 10 * time.Second},
		{"9223372036", 9223372036 * time.Second},
	}
	for _, c := range good {
		l, n := durationLoader(t, c.yaml)
		if got, ok := l.duration(n, "timeout"); !ok || got != c.want || len(l.diags) > 0 {
			t.Errorf("timeout: %s: got %v, %v, %v; want %v", c.yaml, got, ok, l.diags, c.want)
		}
	}
	bad := []struct{ yaml, want string }{
		{"0", "duration must be positive, got 0"},
		{"0s", "duration must be positive, got 0s"},
		{"-5", "duration must be positive, got -5"},
		{"-1.5s", "duration must be positive, got -1.5s"},
		{"60x", `invalid duration "60x": use a number of seconds`},
		{`"60"`, `invalid duration "60": use a number of seconds`},
		{"1e300", `invalid duration "1e300": out of range`},
		{"-1e300", `invalid duration "-1e300": out of range`},
		{"9223372037", `invalid duration "9223372037": out of range`},
		{".inf", `invalid duration ".inf": out of range`},
		{".nan", `invalid duration ".nan": out of range`},
		{"~", "must be a duration: a number of seconds (60, 1.5) or a number with a unit"},
		{"[1]", "must be a duration"},
	}
	for _, c := range bad {
		l, n := durationLoader(t, c.yaml)
		got, ok := l.duration(n, "timeout")
		if ok || len(l.diags) != 1 {
			t.Errorf("timeout: %s: got %v, %v, %v; want one error", c.yaml, got, ok, l.diags)
			continue
		}
		d := l.diags[0]
		if !strings.Contains(d.Message, c.want) || d.Line != 1 || d.Col != 10 {
			t.Errorf("timeout: %s: got %s, want %q at 1:10", c.yaml, d, c.want)
		}
	}
}

// durationLoader parses "timeout: V" and returns a loader and V's node.
func durationLoader(t *testing.T, v string) (*loader, *yaml.Node) {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte("timeout: "+v), &doc); err != nil {
		t.Fatal(err)
	}
	return &loader{file: "h.yaml"}, doc.Content[0].Content[1]
}
