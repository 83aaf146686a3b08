package engine

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

// laughs builds a "billion laughs" file: level i of the anchor chain holds
// fan uses of level i-1 in the form item renders (a list, a mapping, a
// merge list...), and use puts the last level where the loader walks it.
func laughs(levels, fan int, base string, item func(prev string, fan int) string, use func(last string) string) string {
	var b strings.Builder
	b.WriteString("version: 1\nx-l0: &l0 " + base + "\n")
	for i := 1; i < levels; i++ {
		fmt.Fprintf(&b, "x-l%d: &l%d %s\n", i, i, item(fmt.Sprintf("*l%d", i-1), fan))
	}
	b.WriteString(use(fmt.Sprintf("*l%d", levels-1)))
	return b.String()
}

func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func seqOf(prev string, fan int) string { return "[" + strings.Join(repeat(prev, fan), ", ") + "]" }

func mergeOf(prev string, fan int) string { return "{<<: " + seqOf(prev, fan) + "}" }

func mapOf(prev string, fan int) string {
	parts := make([]string, fan)
	for i := range parts {
		parts[i] = fmt.Sprintf("k%d: %s", i, prev)
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

func asMethod(last string) string { return "methods:\n  m: " + last + "\n" }

func asDefault(kind string) func(string) string {
	return func(last string) string {
		return "methods:\n  m:\n    params:\n      p: {type: " + kind + ", default: " + last + "}\n    reply: {payload: '1'}\n"
	}
}

// TestAliasExpansionIsBounded: alias bombs of every shape are refused
// quickly with one error at the alias where the expansion crossed the bound
// (before this bound, the merge-key shapes took seconds to hours and a
// self-merge overflowed the stack).
func TestAliasExpansionIsBounded(t *testing.T) {
	reply := "{reply: {payload: '\"lol\"'}}"
	cases := []struct {
		name, src, want string
	}{
		{"merge chain 10x10", laughs(10, 10, reply, mergeOf, asMethod), ":6:17: x-l4.<<[0]: alias *l3: aliases and merge keys expand to more than 10000 YAML nodes"},
		{"merge chain 30x2", laughs(30, 2, reply, mergeOf, asMethod), ":12:19: x-l10.<<[0]: alias *l9: aliases and merge keys expand to more than 10000 YAML nodes"},
		{"merge of one alias per level", laughs(60, 1, reply, mergeOf, asMethod), "nests more than 100 levels deep once expanded"},
		{"sequences 10x10", laughs(10, 10, "[lol]", seqOf, asDefault("array")), "alias *l3: aliases and merge keys expand to more than 10000 YAML nodes"},
		{"mappings 10x10", laughs(10, 10, "{a: lol}", mapOf, asDefault("object")), "alias *l3: aliases and merge keys expand to more than 10000 YAML nodes"},
		{"unused anchors still count", laughs(10, 10, "[lol]", seqOf, func(string) string { return asMethod(reply) }), "alias *l3: aliases"},
		{"alias as a key", laughs(10, 10, "[lol]", seqOf, func(last string) string { return "methods:\n  ? " + last + "\n  : " + reply + "\n" }), "alias *l3: aliases"},
		{"long text aliased", "version: 1\nx-e: &e '\"" + strings.Repeat("x", 200_000) + "\"'\nmethods:\n" +
			strings.Join(func() []string {
				var ms []string
				for i := range 6 {
					ms = append(ms, fmt.Sprintf("  m%d: {reply: {payload: *e}}", i))
				}
				return ms
			}(), "\n") + "\n", "expand to more than 1048576 bytes of text"},
		{"self merge", "version: 1\nmethods:\n  m: &m {<<: *m, reply: {payload: '1'}}\n", ":3:14: methods.m.<<: alias *m is inside the value it names"},
		{"self list", "version: 1\nmethods:\n  m:\n    params:\n      p: {type: array, default: &a [[*a]]}\n    reply: {payload: '1'}\n", "alias *a is inside the value it names"},
		{"deep nesting", "version: 1\nmethods:\n  m:\n    params:\n      p: {type: array, default: " + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + "}\n    reply: {payload: '1'}\n", "nested more than 100 levels deep"},
		{"deeper than yaml.v3 allows", "version: 1\nx: " + strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000) + "\n", "exceeded max depth of 10000"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// The error names the alias where the count crossed the
			// bound: the walk stopped there. parseWithin only guards
			// against a hang (the unbounded shapes took hours).
			set, err := parseWithin(t, c.src, time.Minute)
			var diags Diagnostics
			if set != nil || !errors.As(err, &diags) || !strings.Contains(diags.Error(), c.want) {
				t.Fatalf("Parse = %v; want an error containing %q", err, c.want)
			}
		})
	}
}

// parseWithin parses src in a goroutine and fails if it takes over d.
func parseWithin(t *testing.T, src string, d time.Duration) (*Set, error) {
	t.Helper()
	type result struct {
		set *Set
		err error
	}
	done := make(chan result, 1)
	go func() {
		s, err := Parse("bomb.yaml", []byte(src), testOptions())
		done <- result{s, err}
	}()
	select {
	case r := <-done:
		return r.set, r.err
	case <-time.After(d):
		t.Fatalf("Parse did not return within %v", d)
		return nil, nil
	}
}

// TestModerateAliasUseLoads: the documented pattern (an x- anchor merged
// into many methods, a shared list) stays well within the bounds, and so do
// 100 levels of nesting.
func TestModerateAliasUseLoads(t *testing.T) {
	var b strings.Builder
	b.WriteString("version: 1\nx-common: &common\n  timeout: 3s\n  concurrency: 2\n  env: {A: a, B: b, C: c}\nx-argv: &argv [echo, hi]\nmethods:\n")
	for i := range 200 {
		fmt.Fprintf(&b, "  m%d:\n    <<: *common\n    run: *argv\n", i)
	}
	if _, err := Parse("ok.yaml", []byte(b.String()), testOptions()); err != nil {
		t.Fatalf("200 methods merging one anchor: %v", err)
	}
	deep := "version: 1\nmethods:\n  m:\n    params:\n      p: {type: array, default: " + strings.Repeat("[", 95) + strings.Repeat("]", 95) + "}\n    reply: {payload: '1'}\n"
	if _, err := Parse("deep.yaml", []byte(deep), testOptions()); err != nil {
		t.Fatalf("100 levels of nesting: %v", err)
	}
}

// TestHugeFlowSequenceIsLinear: parsing a flow list grows linearly with
// its length. The 8x longer list (320 000 items, 640 KB, within the file
// size limit) must take less than 24x the short one's time, both measured
// in this run (the fastest of a few tries each, so that a busy machine
// slows both alike); a quadratic walk would take about 64x.
func TestHugeFlowSequenceIsLinear(t *testing.T) {
	fastest := func(items, tries int) time.Duration {
		src := "version: 1\nx: [" + strings.Repeat("1,", items) + "1]\nmethods: {}\n"
		best := time.Duration(math.MaxInt64)
		for range tries {
			start := time.Now()
			if _, err := parseWithin(t, src, time.Minute); err == nil {
				t.Fatal("x: is not a known key; want an error")
			}
			best = min(best, time.Since(start))
		}
		return best
	}
	short := fastest(40_000, 5)
	long := fastest(320_000, 2)
	ratio := float64(long) / float64(short)
	t.Logf("40 000 items %v, 320 000 items %v: %.1fx", short, long, ratio)
	if ratio > 24 {
		t.Errorf("8x the items took %.1fx the time (%v vs %v), want about 8x", ratio, long, short)
	}
}

// FuzzLoadYAML feeds alias and merge-key shapes to Parse: it must never
// panic and must return within a second (the cost bounds are checked before
// the walk).
func FuzzLoadYAML(f *testing.F) {
	reply := "{reply: {payload: '1'}}"
	f.Add(laughs(6, 4, reply, mergeOf, asMethod))
	f.Add(laughs(6, 4, "[lol]", seqOf, asDefault("array")))
	f.Add(laughs(6, 4, "{a: lol}", mapOf, asDefault("object")))
	f.Add("version: 1\nmethods:\n  m: &m {<<: *m, reply: {payload: '1'}}\n")
	f.Add("version: 1\nx-c: &c {timeout: 3s}\nx-d: &d {concurrency: 2}\nmethods:\n  m: {<<: [*c, *d], run: [echo]}\n  n: {<<: *c, shell: 'true'}\n")
	f.Add("version: 1\nmethods:\n  ? &k m\n  : " + reply + "\n  *k : " + reply + "\n")
	f.Add("version: 1\nmethods:\n  m: {params: {p: {type: array, default: &a [*a]}}, reply: {payload: '1'}}\n")
	f.Add("version: 1\nx: " + strings.Repeat("[", 120) + strings.Repeat("]", 120) + "\n")
	opts := testOptions()
	f.Fuzz(func(t *testing.T, src string) {
		start := time.Now()
		s, err := Parse("fuzz.yaml", []byte(src), opts)
		if (s == nil) == (err == nil) {
			t.Fatalf("Parse = %v, %v; want exactly one of a Set and an error", s, err)
		}
		if el := time.Since(start); el > time.Second {
			t.Fatalf("Parse took %v, want under a second", el)
		}
	})
}
