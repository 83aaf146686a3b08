package engine

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// maxJSONDepth is encoding/json's nesting limit: deeper input is an error.
const maxJSONDepth = 10000

// errJSON is decodeJSON's error for a syntax error. Callers that show a
// reason take it from encoding/json, which rejects exactly the same
// syntax (a differential fuzz test holds the two together); the decoder
// itself is the fast path.
var errJSON = errors.New("invalid JSON")

// maxExactInt is the largest integer a float64 holds exactly, with every
// integer below it: 2^53.
const maxExactInt = 1 << 53

// payloadError is a payload that is valid JSON syntax but that methodd
// refuses rather than alter (issue 19): text that is not valid UTF-8, a
// \u escape of a lone UTF-16 surrogate, a number out of float64's range.
// Offset is the byte offset in the payload.
type payloadError struct {
	Offset int
	What   string // "is not valid UTF-8", ...
}

func (e *payloadError) Error() string { return e.text("payload") }

// text is the message with the name of what was decoded.
func (e *payloadError) text(name string) string {
	return fmt.Sprintf("%s %s at byte %d", name, e.What, e.Offset)
}

// checkPayloadText refuses a payload whose bytes are not valid UTF-8 or
// that escapes a lone surrogate (\ud800): encoding/json would turn either
// into U+FFFD silently. It is a fast scan for the common case (valid UTF-8
// without backslashes) and runs for every call, before the method does.
func checkPayloadText(b []byte) error {
	if utf8.Valid(b) && bytes.IndexByte(b, '\\') < 0 {
		return nil
	}
	for i := 0; i < len(b); {
		c := b[i]
		switch {
		case c == '\\' && i+1 < len(b) && b[i+1] == 'u':
			n, err := surrogateEscape(b, i)
			if err != nil {
				return err
			}
			i += n
		case c == '\\':
			i += 2 // outside a string a backslash is a syntax error anyway
		case c < utf8.RuneSelf:
			i++
		default:
			r, w := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && w == 1 {
				return &payloadError{Offset: i, What: "is not valid UTF-8"}
			}
			i += w
		}
	}
	return nil
}

// surrogateEscape checks the \u escape at i: a surrogate must be a high
// one followed by an escaped low one. It returns the bytes the escape (or
// pair) takes.
func surrogateEscape(b []byte, i int) (int, error) {
	r := hex4(b, i+2)
	if r < 0 || !utf16.IsSurrogate(r) {
		return 2, nil // not a surrogate, or a syntax error found elsewhere
	}
	if r < 0xdc00 && i+7 < len(b) && b[i+6] == '\\' && b[i+7] == 'u' {
		if lo := hex4(b, i+8); lo >= 0xdc00 && lo <= 0xdfff {
			return 12, nil
		}
	}
	return 0, &payloadError{Offset: i, What: fmt.Sprintf("has a lone UTF-16 surrogate \\u%04x", r)}
}

// decodeJSON parses one JSON document into what json.Unmarshal stores in an
// `any`: map[string]any, []any, string, float64, bool or nil, with the same
// treatment of duplicate keys (last wins), except that it never alters a
// value: an integer beyond ±2^53 (digits only, no fraction or exponent)
// is a json.Number holding its digits, and invalid UTF-8, a lone escaped
// surrogate or a number out of float64's range is a *payloadError. It
// makes one pass without reflection, and a string without escapes or
// non-ASCII bytes is one copy: on the per-call path this is several times
// cheaper than json.Unmarshal, which scans the input twice.
func decodeJSON(data []byte) (any, error) {
	d := jsonDecoder{data: data}
	d.space()
	v, err := d.value(1)
	if err != nil {
		return nil, err
	}
	if d.space(); d.pos != len(d.data) {
		return nil, errJSON
	}
	return v, nil
}

type jsonDecoder struct {
	data []byte
	pos  int
}

func (d *jsonDecoder) space() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

// value parses the value at pos; depth counts the containers it is in,
// itself included when it is one.
func (d *jsonDecoder) value(depth int) (any, error) {
	if d.pos >= len(d.data) {
		return nil, errJSON
	}
	switch c := d.data[d.pos]; {
	case c == '{':
		return d.object(depth)
	case c == '[':
		return d.array(depth)
	case c == '"':
		return d.string()
	case c == '-' || c >= '0' && c <= '9':
		return d.number()
	case c == 't':
		return true, d.literal("true")
	case c == 'f':
		return false, d.literal("false")
	case c == 'n':
		return nil, d.literal("null")
	}
	return nil, errJSON
}

func (d *jsonDecoder) literal(word string) error {
	if len(d.data)-d.pos < len(word) || string(d.data[d.pos:d.pos+len(word)]) != word {
		return errJSON
	}
	d.pos += len(word)
	return nil
}

func (d *jsonDecoder) object(depth int) (any, error) {
	if depth > maxJSONDepth {
		return nil, errJSON
	}
	d.pos++ // '{'
	m := map[string]any{}
	d.space()
	if d.pos < len(d.data) && d.data[d.pos] == '}' {
		d.pos++
		return m, nil
	}
	for {
		if d.pos >= len(d.data) || d.data[d.pos] != '"' {
			return nil, errJSON
		}
		k, err := d.string()
		if err != nil {
			return nil, err
		}
		if d.space(); d.pos >= len(d.data) || d.data[d.pos] != ':' {
			return nil, errJSON
		}
		d.pos++
		d.space()
		v, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		m[k.(string)] = v
		if done, err := d.next('}'); err != nil || done {
			return m, err
		}
	}
}

func (d *jsonDecoder) array(depth int) (any, error) {
	if depth > maxJSONDepth {
		return nil, errJSON
	}
	d.pos++ // '['
	a := []any{}
	d.space()
	if d.pos < len(d.data) && d.data[d.pos] == ']' {
		d.pos++
		return a, nil
	}
	for {
		v, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		a = append(a, v)
		if done, err := d.next(']'); err != nil || done {
			return a, err
		}
	}
}

// next consumes the ',' before another member (false) or the closing byte
// (true), with the white space around them.
func (d *jsonDecoder) next(closing byte) (done bool, err error) {
	d.space()
	if d.pos >= len(d.data) {
		return false, errJSON
	}
	switch d.data[d.pos] {
	case ',':
		d.pos++
		d.space()
		return false, nil
	case closing:
		d.pos++
		return true, nil
	}
	return false, errJSON
}

func (d *jsonDecoder) number() (any, error) {
	start := d.pos
	if d.data[d.pos] == '-' {
		d.pos++
	}
	intStart := d.pos
	switch {
	case d.pos < len(d.data) && d.data[d.pos] == '0':
		d.pos++
	case d.digits() == 0:
		return nil, errJSON
	}
	integer := true
	if d.pos < len(d.data) && d.data[d.pos] == '.' {
		integer = false
		d.pos++
		if d.digits() == 0 {
			return nil, errJSON
		}
	}
	if d.pos < len(d.data) && (d.data[d.pos] == 'e' || d.data[d.pos] == 'E') {
		integer = false
		d.pos++
		if d.pos < len(d.data) && (d.data[d.pos] == '+' || d.data[d.pos] == '-') {
			d.pos++
		}
		if d.digits() == 0 {
			return nil, errJSON
		}
	}
	lit := d.data[start:d.pos]
	if integer && d.pos-intStart >= 16 { // 2^53 has 16 digits
		//nolint:nilerr // beyond int64 (err) or beyond 2^53 alike: the exact digits are kept as a json.Number, not an error.
		if n, err := strconv.ParseInt(string(lit), 10, 64); err != nil || n > maxExactInt || n < -maxExactInt {
			return json.Number(lit), nil
		}
	}
	f, err := strconv.ParseFloat(string(lit), 64)
	if err != nil {
		return nil, &payloadError{Offset: start, What: fmt.Sprintf("has the number %.40s, out of range of a float64", lit)}
	}
	return f, nil
}

func (d *jsonDecoder) digits() int {
	n := 0
	for d.pos < len(d.data) && d.data[d.pos] >= '0' && d.data[d.pos] <= '9' {
		d.pos++
		n++
	}
	return n
}

// string parses a JSON string at pos (its opening quote).
func (d *jsonDecoder) string() (any, error) {
	d.pos++ // '"'
	start := d.pos
	d.pos += plainPrefix(d.data[d.pos:])
	switch {
	case d.pos == len(d.data):
		return nil, errJSON
	case d.data[d.pos] == '"':
		s := string(d.data[start:d.pos])
		d.pos++
		return s, nil
	}
	return d.slowString(start)
}

// slowString finishes a string that has escapes or non-ASCII bytes, the way
// encoding/json unquotes, except that invalid UTF-8 and lone surrogates
// are a *payloadError instead of U+FFFD.
func (d *jsonDecoder) slowString(start int) (any, error) {
	b := make([]byte, 0, d.pos-start+64)
	b = append(b, d.data[start:d.pos]...)
	for d.pos < len(d.data) {
		c := d.data[d.pos]
		switch {
		case c == '"':
			d.pos++
			return string(b), nil
		case c < 0x20:
			return nil, errJSON
		case c >= utf8.RuneSelf:
			r, w := utf8.DecodeRune(d.data[d.pos:])
			if r == utf8.RuneError && w == 1 {
				return nil, &payloadError{Offset: d.pos, What: "is not valid UTF-8"}
			}
			b = append(b, d.data[d.pos:d.pos+w]...)
			d.pos += w
		case c == '\\':
			var err error
			if b, err = d.escape(b); err != nil {
				return nil, err
			}
		default:
			b = append(b, c)
			d.pos++
		}
	}
	return nil, errJSON
}

// escape appends the character of the escape sequence at pos.
func (d *jsonDecoder) escape(b []byte) ([]byte, error) {
	if d.pos+1 >= len(d.data) {
		return nil, errJSON
	}
	c := d.data[d.pos+1]
	d.pos += 2
	switch c {
	case '"', '\\', '/':
		return append(b, c), nil
	case 'b':
		return append(b, '\b'), nil
	case 'f':
		return append(b, '\f'), nil
	case 'n':
		return append(b, '\n'), nil
	case 'r':
		return append(b, '\r'), nil
	case 't':
		return append(b, '\t'), nil
	case 'u':
		r := hex4(d.data, d.pos)
		if r < 0 {
			return nil, errJSON
		}
		if utf16.IsSurrogate(r) {
			n, err := surrogateEscape(d.data, d.pos-2)
			if err != nil {
				return nil, err
			}
			r = utf16.DecodeRune(r, hex4(d.data, d.pos+6))
			d.pos += n - 2
			return utf8.AppendRune(b, r), nil
		}
		d.pos += 4
		return utf8.AppendRune(b, r), nil
	}
	return nil, errJSON
}

// hex4 reads four hex digits at data[i:], or returns -1.
func hex4(data []byte, i int) rune {
	if i < 0 || i+4 > len(data) {
		return -1
	}
	var r rune
	for _, c := range data[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r<<4 | rune(c)
	}
	return r
}
