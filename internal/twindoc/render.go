package twindoc

import (
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// timeLayout is how real hubs render twin times: UTC, 7 fractional digits.
const timeLayout = "2006-01-02T15:04:05.0000000Z"

// zeroTime is how real hubs render a time that never happened.
const zeroTime = "0001-01-01T00:00:00Z"

// formatTime renders t as a twin time (§2.2).
func formatTime(t time.Time) string {
	if t.IsZero() {
		return zeroTime
	}
	return t.UTC().Format(timeLayout)
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. Only what JSON requires is
// escaped: no HTML escaping, so values read back byte for byte.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '\r':
			b = append(b, '\\', 'r')
		case c == '\t':
			b = append(b, '\\', 't')
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		case c < utf8.RuneSelf:
			b = append(b, c)
		default:
			r, n := utf8.DecodeRuneInString(s[i:])
			b = utf8.AppendRune(b, r) // an invalid byte becomes U+FFFD
			i += n
			continue
		}
		i++
	}
	return append(b, '"')
}

// appendValue appends v as JSON, object members in their parsed order.
func appendValue(b []byte, v *value) []byte {
	switch v.kind {
	case kindNull:
		return append(b, "null"...)
	case kindString:
		return appendString(b, v.text)
	case kindObject:
		b = append(b, '{')
		b = appendValueMembers(b, v)
		return append(b, '}')
	case kindArray:
		b = append(b, '[')
		for i, e := range v.vals {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendValue(b, e)
		}
		return append(b, ']')
	}
	return append(b, v.text...) // bool and number
}

// appendValueMembers appends the members of the object v, comma-separated.
func appendValueMembers(b []byte, v *value) []byte {
	for i, k := range v.keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, k)
		b = append(b, ':')
		b = appendValue(b, v.vals[i])
	}
	return b
}

// sortedKeys returns the member names of an object node in byte order,
// the order the twin renders them in.
func sortedKeys(n *node) []string {
	keys := make([]string, 0, len(n.members))
	for k := range n.members {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// appendNode appends the user value stored at n, without metadata.
func appendNode(b []byte, n *node) []byte {
	if n.members == nil {
		return appendValue(b, n.leaf)
	}
	b = append(b, '{')
	b = appendMembers(b, n)
	return append(b, '}')
}

// appendMembers appends the members of the object node n in sorted order,
// comma-separated.
func appendMembers(b []byte, n *node) []byte {
	for i, k := range sortedKeys(n) {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, k)
		b = append(b, ':')
		b = appendNode(b, n.members[k])
	}
	return b
}

// appendVersioned appends an object: the members of n (when n is not nil)
// or of p (when p is not nil), then `"$version":version` last.
func appendVersioned(b []byte, n *node, p *value, version int64) []byte {
	b = append(b, '{')
	start := len(b)
	if n != nil {
		b = appendMembers(b, n)
	}
	if p != nil {
		b = appendValueMembers(b, p)
	}
	if len(b) > start {
		b = append(b, ',')
	}
	b = append(b, `"$version":`...)
	b = strconv.AppendInt(b, version, 10)
	return append(b, '}')
}
