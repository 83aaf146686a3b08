package metrics

import (
	"math"
	"strings"
	"testing"
)

// TestEscape: HELP text escapes backslash and newline only; a label value
// also the double quote; other bytes, UTF-8 included, pass through.
func TestEscape(t *testing.T) {
	tests := []struct{ in, help, label string }{
		{"plain", "plain", "plain"},
		{"", "", ""},
		{`a\b`, `a\\b`, `a\\b`},
		{"line1\nline2", `line1\nline2`, `line1\nline2`},
		{`say "hi"`, `say "hi"`, `say \"hi\"`},
		{"\\\"\n", `\\"\n`, `\\\"\n`},
		{"été\t→", "été\t→", "été\t→"},
	}
	for _, tc := range tests {
		if got := escapeHelp(tc.in); got != tc.help {
			t.Errorf("escapeHelp(%q) = %q, want %q", tc.in, got, tc.help)
		}
		if got := escapeLabelValue(tc.in); got != tc.label {
			t.Errorf("escapeLabelValue(%q) = %q, want %q", tc.in, got, tc.label)
		}
	}
}

// TestFormatFloat: floats are spelt as Prometheus spells them.
func TestFormatFloat(t *testing.T) {
	tests := []struct {
		in   float64
		want string
	}{
		{0, "0"}, {1, "1"}, {-1, "-1"}, {0.001, "0.001"}, {0.0025, "0.0025"}, {300, "300"},
		{1e6, "1e+06"}, {123456, "123456"}, {1.5e-7, "1.5e-07"}, {1764430000.123456, "1.764430000123456e+09"},
		{math.Inf(1), "+Inf"}, {math.Inf(-1), "-Inf"}, {math.NaN(), "NaN"},
		{math.MaxUint64, "1.8446744073709552e+19"},
	}
	for _, tc := range tests {
		if got := formatFloat(tc.in); got != tc.want {
			t.Errorf("formatFloat(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestWriteTextExact: every family type is written line for line as the
// text format 0.0.4 has it, in the order gathered.
func TestWriteTextExact(t *testing.T) {
	reg := NewRegistry()
	c := NewCounterVec("a_total", "Calls.\nSecond \\ line.", "method", "status")
	c.Inc("z", "200")
	c.Inc("b\"q", "404")
	c.Inc("z", "200")
	h := NewHistogramVec("b_seconds", "Durations.", []float64{0.5, 1}, "method")
	h.Observe(0.5, "m")
	h.Observe(0.75, "m")
	h.Observe(7, "m")
	g := NewGauge("c", "Info.", Label{"version", "v1"}, Label{"arch", "x\\y\n"})
	g.Set(1)
	empty := NewCounterVec("d_total", "No series yet.", "x")
	for _, col := range []Collector{h, g, c, empty, summaryOf(Family{Name: "e_seconds", Help: "Pauses.", Type: SummaryType,
		Series: []Series{{Quantiles: []Quantile{{0, 0.001}, {1, math.Inf(1)}}, Sum: 2.5, Count: 3}}})} {
		if err := reg.Register(col); err != nil {
			t.Fatal(err)
		}
	}
	var b strings.Builder
	if err := WriteText(&b, reg.Gather()); err != nil {
		t.Fatal(err)
	}
	want := `# HELP a_total Calls.\nSecond \\ line.
# TYPE a_total counter
a_total{method="b\"q",status="404"} 1
a_total{method="z",status="200"} 2
# HELP b_seconds Durations.
# TYPE b_seconds histogram
b_seconds_bucket{method="m",le="0.5"} 1
b_seconds_bucket{method="m",le="1"} 2
b_seconds_bucket{method="m",le="+Inf"} 3
b_seconds_sum{method="m"} 8.25
b_seconds_count{method="m"} 3
# HELP c Info.
# TYPE c gauge
c{arch="x\\y\n",version="v1"} 1
# HELP e_seconds Pauses.
# TYPE e_seconds summary
e_seconds{quantile="0"} 0.001
e_seconds{quantile="1"} +Inf
e_seconds_sum 2.5
e_seconds_count 3
`
	if got := b.String(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

// summaryOf is a Collector of one fixed family.
type summaryOf Family

func (s summaryOf) Names() []string                { return []string{s.Name} }
func (s summaryOf) Collect(fams []Family) []Family { return append(fams, Family(s)) }

// TestRegisterRefuses: a name registered twice, within one Collector or
// across two, and an invalid name are refused, and nothing of the refused
// Collector is added.
func TestRegisterRefuses(t *testing.T) {
	reg := NewRegistry()
	if _, err := New(reg, "v"); err != nil {
		t.Fatal(err)
	}
	if _, err := New(reg, "v"); err == nil {
		t.Error("New twice on one Registry: got no error")
	}
	for _, names := range [][]string{{"ok_one", "ok_one"}, {"ok_two", "9bad"}, {"ok_three", "bad-name"}, {""}} {
		if err := reg.Register(namesOnly(names)); err == nil {
			t.Errorf("Register(%q): got no error", names)
		}
	}
	if err := reg.Register(namesOnly{"ok_one", "ok_two", "ok_three", "a:b_c9"}); err != nil {
		t.Errorf("names of refused Collectors stayed registered: %v", err)
	}
}

// namesOnly is a Collector that names families and yields none.
type namesOnly []string

func (n namesOnly) Names() []string                { return n }
func (n namesOnly) Collect(fams []Family) []Family { return fams }
