package engine

import (
	"errors"
	"strconv"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// maxJSONDepth is encoding/json's nesting limit: deeper input is an error.
const maxJSONDepth = 10000

// errJSON is decodeJSON's only error. Callers that show a reason take it
// from encoding/json, which rejects exactly the same inputs (a differential
// fuzz test holds the two together); the decoder itself is the fast path.
var errJSON = errors.New("invalid JSON")

// decodeJSON parses one JSON document into what json.Unmarshal stores in an
// `any`: map[string]any, []any, string, float64, bool or nil, with the same
// treatment of duplicate keys (last wins), invalid UTF-8 and lone surrogates
// (U+FFFD) and out-of-range numbers (an error). It makes one pass without
// reflection, and a string without escapes or non-ASCII bytes is one copy:
// on the per-call path this is several times cheaper than json.Unmarshal,
// which scans the input twice.
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
	switch {
	case d.pos < len(d.data) && d.data[d.pos] == '0':
		d.pos++
	case d.digits() == 0:
		return nil, errJSON
	}
	if d.pos < len(d.data) && d.data[d.pos] == '.' {
		d.pos++
		if d.digits() == 0 {
			return nil, errJSON
		}
	}
	if d.pos < len(d.data) && (d.data[d.pos] == 'e' || d.data[d.pos] == 'E') {
		d.pos++
		if d.pos < len(d.data) && (d.data[d.pos] == '+' || d.data[d.pos] == '-') {
			d.pos++
		}
		if d.digits() == 0 {
			return nil, errJSON
		}
	}
	f, err := strconv.ParseFloat(string(d.data[start:d.pos]), 64)
	if err != nil {
		return nil, errJSON // out of float64's range: json.Unmarshal fails too
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
// encoding/json unquotes: invalid UTF-8 and lone surrogates become U+FFFD.
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
				b = utf8.AppendRune(b, unicode.ReplacementChar)
			} else {
				b = append(b, d.data[d.pos:d.pos+w]...)
			}
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
		r := d.hex4(d.pos)
		if r < 0 {
			return nil, errJSON
		}
		d.pos += 4
		if utf16.IsSurrogate(r) {
			// A pair makes one character; anything else leaves U+FFFD and is
			// read on its own (encoding/json's unquote).
			if d.pos+1 < len(d.data) && d.data[d.pos] == '\\' && d.data[d.pos+1] == 'u' {
				if dec := utf16.DecodeRune(r, d.hex4(d.pos+2)); dec != unicode.ReplacementChar {
					d.pos += 6
					return utf8.AppendRune(b, dec), nil
				}
			}
			r = unicode.ReplacementChar
		}
		return utf8.AppendRune(b, r), nil
	}
	return nil, errJSON
}

// hex4 reads four hex digits at i, or returns -1.
func (d *jsonDecoder) hex4(i int) rune {
	if i+4 > len(d.data) {
		return -1
	}
	var r rune
	for _, c := range d.data[i : i+4] {
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
