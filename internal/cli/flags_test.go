package cli

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

// TestDurationFlag: a duration flag takes plain seconds (integer or
// decimal) as well as Go durations, passes signs on to the command's own
// range checks, and refuses garbage and values a time.Duration cannot hold.
func TestDurationFlag(t *testing.T) {
	good := []struct {
		in   string
		want time.Duration
	}{
		{"60", time.Minute},
		{"1.5", 1500 * time.Millisecond},
		{"0.001", time.Millisecond},
		{".5", 500 * time.Millisecond},
		{"0", 0},
		{"-2", -2 * time.Second},
		{"+3", 3 * time.Second},
		{"60s", time.Minute},
		{"1m30s", 90 * time.Second},
		{"500ms", 500 * time.Millisecond},
		{"-5s", -5 * time.Second},
		{"9223372036", 9223372036 * time.Second},
	}
	for _, tc := range good {
		var d time.Duration
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		durationVar(fs, &d, "d", 7*time.Second, "a span")
		if err := fs.Parse([]string{"--d", tc.in}); err != nil || d != tc.want {
			t.Errorf("--d %s: got %v, %v; want %v", tc.in, d, err, tc.want)
		}
	}
	for _, in := range []string{"", "60x", "1.2.3", "1e3", "1e300", "9223372037", "-1e300", "inf", "NaN", "0x10", "1_000", "s", ".", "+", "--5", "ten"} {
		var d time.Duration
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		durationVar(fs, &d, "d", 7*time.Second, "a span")
		if err := fs.Parse([]string{"--d", in}); err == nil {
			t.Errorf("--d %q: got %v and no error", in, d)
		}
	}
}

// TestDurationFlagDefaultAndUsage: the default stays when the flag is not
// given, and -h says both forms are accepted and shows the default.
func TestDurationFlagDefaultAndUsage(t *testing.T) {
	var d time.Duration
	var out strings.Builder
	fs := newFlagSet("t", "usage: t", &out)
	durationVar(fs, &d, "drain", 7*time.Second, "how long")
	if err := fs.Parse(nil); err != nil || d != 7*time.Second {
		t.Fatalf("no flag: got %v, %v; want 7s", d, err)
	}
	fs.Usage()
	if want := "how long (seconds or a duration like 30s) (default 7s)"; !strings.Contains(out.String(), want) {
		t.Errorf("usage %q does not contain %q", out.String(), want)
	}
}
