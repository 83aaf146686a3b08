package metrics

import (
	"bufio"
	"io"
	"math"
	"strconv"
	"strings"
)

// ContentType is the media type of WriteText's output: the Prometheus
// text exposition format 0.0.4.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// WriteText writes fams to w in the text exposition format 0.0.4, in the
// order given: per family a # HELP and a # TYPE line, then a line per
// sample; a histogram's series as cumulative _bucket{le=...} lines ending
// with le="+Inf", then _sum and _count; a summary's as {quantile=...}
// lines, _sum and _count. It returns w's first error.
func WriteText(w io.Writer, fams []Family) error {
	b := bufio.NewWriter(w)
	for _, f := range fams {
		writeFamily(b, f)
	}
	return b.Flush()
}

// writeFamily writes one family; b keeps its first error.
func writeFamily(b *bufio.Writer, f Family) {
	b.WriteString("# HELP " + f.Name + " " + escapeHelp(f.Help) + "\n")
	b.WriteString("# TYPE " + f.Name + " " + string(f.Type) + "\n")
	for _, s := range f.Series {
		switch f.Type {
		case HistogramType:
			for _, bk := range s.Buckets {
				writeSample(b, f.Name+"_bucket", s.Labels, &Label{"le", formatFloat(bk.UpperBound)}, formatUint(bk.Count))
			}
			writeSample(b, f.Name+"_sum", s.Labels, nil, formatFloat(s.Sum))
			writeSample(b, f.Name+"_count", s.Labels, nil, formatUint(s.Count))
		case SummaryType:
			for _, q := range s.Quantiles {
				writeSample(b, f.Name, s.Labels, &Label{"quantile", formatFloat(q.Quantile)}, formatFloat(q.Value))
			}
			writeSample(b, f.Name+"_sum", s.Labels, nil, formatFloat(s.Sum))
			writeSample(b, f.Name+"_count", s.Labels, nil, formatUint(s.Count))
		default:
			writeSample(b, f.Name, s.Labels, nil, formatFloat(s.Value))
		}
	}
}

// writeSample writes `name{labels,extra} value`, without braces when there
// are no labels.
func writeSample(b *bufio.Writer, name string, labels []Label, extra *Label, value string) {
	b.WriteString(name)
	if len(labels) > 0 || extra != nil {
		b.WriteByte('{')
		for i, l := range labels {
			if i > 0 {
				b.WriteByte(',')
			}
			writeLabel(b, l)
		}
		if extra != nil {
			if len(labels) > 0 {
				b.WriteByte(',')
			}
			writeLabel(b, *extra)
		}
		b.WriteByte('}')
	}
	b.WriteByte(' ')
	b.WriteString(value)
	b.WriteByte('\n')
}

// writeLabel writes name="value" with value escaped.
func writeLabel(b *bufio.Writer, l Label) {
	b.WriteString(l.Name)
	b.WriteString(`="`)
	b.WriteString(escapeLabelValue(l.Value))
	b.WriteByte('"')
}

// escapeHelp escapes a HELP text: backslash and newline.
func escapeHelp(s string) string { return escape(s, false) }

// escapeLabelValue escapes a label value: backslash, newline and double
// quote.
func escapeLabelValue(s string) string { return escape(s, true) }

// escape writes \\ for \, \n for a newline and, with quote, \" for ".
func escape(s string, quote bool) string {
	special := func(c byte) bool { return c == '\\' || c == '\n' || quote && c == '"' }
	i := 0
	for i < len(s) && !special(s[i]) {
		i++
	}
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	b.WriteString(s[:i])
	for ; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\n':
			b.WriteString(`\n`)
		case special(c):
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// formatFloat spells f as Prometheus does: +Inf, -Inf, NaN, else the
// shortest decimal or exponent form that reads back as f.
func formatFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "+Inf"
	case math.IsInf(f, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// formatUint spells a count in decimal.
func formatUint(n uint64) string { return strconv.FormatUint(n, 10) }
