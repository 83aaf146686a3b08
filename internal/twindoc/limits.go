package twindoc

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/methodd/methodd/iothub"
)

// maxEcho is how many bytes of a key or value an error message quotes.
const maxEcho = 64

// invalid is the 400004 ArgumentInvalid error every rule violation is.
func invalid(format string, args ...any) error {
	return iothub.NewError(iothub.CodeArgumentInvalid, fmt.Sprintf(format, args...))
}

// path locates a property for error messages; it is rendered only when an
// error names it.
type path struct {
	parent *path
	name   string // a member name; the section's name at the root
	index  int    // the index of an array element, when elem
	elem   bool
}

func (p *path) member(key string) *path { return &path{parent: p, name: key} }
func (p *path) element(i int) *path     { return &path{parent: p, index: i, elem: true} }

func (p *path) String() string {
	switch {
	case p.parent == nil:
		return p.name
	case p.elem:
		return p.parent.String() + "[" + strconv.Itoa(p.index) + "]"
	default:
		return p.parent.String() + "." + segment(p.name)
	}
}

// segment renders a key for a message: at most maxEcho bytes, control
// characters escaped, the empty key as "".
func segment(key string) string {
	if key == "" {
		return `""`
	}
	var b strings.Builder
	for _, r := range clip(key, maxEcho) {
		if unicode.IsControl(r) {
			fmt.Fprintf(&b, `\u%04x`, r)
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// clip cuts s to at most n bytes on a rune boundary, marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// checkSection validates the object v written to a section (§1.7): keys,
// value types and ranges, string lengths and depth. The section itself is
// level 0; the first nested object is level 1.
func checkSection(v *value, section string) error {
	return checkMembers(v, &path{name: section}, 0)
}

// checkMembers validates the members of the object v at level.
func checkMembers(v *value, p *path, level int) error {
	for i, k := range v.keys {
		mp := p.member(k)
		if err := checkKey(k, mp); err != nil {
			return err
		}
		if err := checkValue(v.vals[i], mp, level); err != nil {
			return err
		}
	}
	return nil
}

// checkKey applies the key rules of §1.7.
func checkKey(k string, p *path) error {
	rule := ""
	switch {
	case k == "":
		rule = "key is empty"
	case len(k) > MaxKeyBytes:
		rule = fmt.Sprintf("key is %d bytes, more than %d", len(k), MaxKeyBytes)
	case strings.ContainsFunc(k, unicode.IsControl):
		rule = "key contains a control character"
	case strings.Contains(k, "."):
		rule = "key contains '.'"
	case strings.Contains(k, "$"):
		rule = "key contains '$'"
	case strings.Contains(k, " "):
		rule = "key contains a space"
	default:
		return nil
	}
	return invalid("%s: %s", p, rule)
}

// checkValue validates v, a member of an object at level or an element of
// an array held there.
func checkValue(v *value, p *path, level int) error {
	switch v.kind {
	case kindString:
		if len(v.text) > MaxStringBytes {
			return invalid("%s: string is %d bytes, more than %d", p, len(v.text), MaxStringBytes)
		}
	case kindNumber:
		return checkNumber(v.text, p)
	case kindObject:
		if level >= MaxDepth {
			return invalid("%s: objects nested more than %d levels", p, MaxDepth)
		}
		return checkMembers(v, p, level+1)
	case kindArray:
		for i, e := range v.vals {
			if err := checkValue(e, p.element(i), level); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkNumber refuses integers outside MinInt..MaxInt; a number with a
// fraction or an exponent is a float and any float is accepted.
func checkNumber(text string, p *path) error {
	if strings.ContainsAny(text, ".eE") {
		return nil
	}
	if n, err := strconv.ParseInt(text, 10, 64); err == nil && n >= MinInt && n <= MaxInt {
		return nil
	}
	return invalid("%s: integer %s is outside %d..%d", p, clip(text, maxEcho), int64(MinInt), int64(MaxInt))
}

// valueSize is the size §1.7 counts for a value: string bytes except
// control characters, 8 per number, 4 per boolean, 0 for null, the sum of
// keys and values of an object and the sum of the elements of an array.
func valueSize(v *value) int {
	switch v.kind {
	case kindString:
		n := 0
		for _, r := range v.text {
			if !unicode.IsControl(r) {
				n += utf8.RuneLen(r)
			}
		}
		return n
	case kindNumber:
		return 8
	case kindBool:
		return 4
	case kindObject:
		n := 0
		for i, k := range v.keys {
			n += len(k) + valueSize(v.vals[i])
		}
		return n
	case kindArray:
		n := 0
		for _, e := range v.vals {
			n += valueSize(e)
		}
		return n
	}
	return 0
}

// checkSize refuses a write that leaves a section above its limit, unless
// the write does not grow the section (§1.7: operations that would
// increase the size above the limit are rejected).
func checkSize(section string, before, after *node, limit int) error {
	if after.size <= limit || after.size <= before.size {
		return nil
	}
	return invalid("%s: size would be %d bytes, more than the limit of %d", section, after.size, limit)
}
