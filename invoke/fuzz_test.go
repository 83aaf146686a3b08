package invoke

import (
	"strings"
	"testing"
)

func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{"dev", "dev/mod", "", "/", "a/b/c", "d ev", "dev/\x00", strings.Repeat("x", 130)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tg, err := ParseTarget(s)
		if err != nil {
			return
		}
		if tg.String() != s {
			t.Errorf("ParseTarget(%q).String() = %q", s, tg.String())
		}
		if again, err := ParseTarget(tg.String()); err != nil || again != tg {
			t.Errorf("round trip of %q: %+v, %v", s, again, err)
		}
	})
}

func FuzzReadTargets(f *testing.F) {
	for _, s := range []string{"a\nb/c\n", "# x\n\n  d  \r\n", "a/b/c\n", "\n\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ts, err := ReadTargets(strings.NewReader(s))
		if err != nil {
			return
		}
		for _, tg := range ts {
			if _, err := ParseTarget(tg.String()); err != nil {
				t.Errorf("ReadTargets returned %+v, which does not parse: %v", tg, err)
			}
		}
	})
}
