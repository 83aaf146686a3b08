package twinquery

import (
	"fmt"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// tokenKind classifies a token.
type tokenKind uint8

const (
	tokEOF    tokenKind = iota // end of input; pos is len(src)
	tokIdent                   // identifier or keyword, text as written
	tokString                  // quoted string, text decoded
	tokNumber                  // number, text as written (decimal or 0x hex)
	tokPunct                   // operator or punctuation, text as written
)

// token is one lexeme of a query; pos is its 0-based byte offset.
type token struct {
	kind tokenKind
	pos  int
	text string
}

// lexer turns a query into tokens on demand. It is a value: copying it
// gives an independent lookahead.
type lexer struct {
	src string
	pos int
}

// next returns the next token, or a *SyntaxError for a malformed one
// (an unterminated string, a bad escape or number, a stray character).
func (l *lexer) next() (token, error) {
	l.skipSpace()
	if l.pos >= len(l.src) {
		return token{kind: tokEOF, pos: len(l.src)}, nil
	}
	c := l.src[l.pos]
	switch {
	case isIdentStart(c):
		return l.ident(), nil
	case isDigit(c):
		return l.number()
	case c == '\'' || c == '"':
		return l.str()
	}
	return l.punct()
}

// spaces are the white-space bytes between tokens.
const spaces = " \t\r\n\f\v"

func (l *lexer) skipSpace() {
	for l.pos < len(l.src) && strings.IndexByte(spaces, l.src[l.pos]) >= 0 {
		l.pos++
	}
}

// isIdentStart reports whether c starts an identifier: [A-Za-z_$] ($ for
// twin metadata names such as $version).
func isIdentStart(c byte) bool {
	return c == '_' || c == '$' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

func isIdentPart(c byte) bool { return isIdentStart(c) || isDigit(c) }

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isHexDigit(c byte) bool {
	return isDigit(c) || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func (l *lexer) ident() token {
	start := l.pos
	for l.pos < len(l.src) && isIdentPart(l.src[l.pos]) {
		l.pos++
	}
	return token{kind: tokIdent, pos: start, text: l.src[start:l.pos]}
}

// number scans a decimal number (digits, optional fraction, optional
// exponent) or a 0x hex integer. A sign is a separate '-' token.
func (l *lexer) number() (token, error) {
	start := l.pos
	if l.hasPrefixFold("0x") {
		l.pos += 2
		if !l.digits(isHexDigit) {
			return token{}, &SyntaxError{Pos: start, Msg: "invalid hex number: expected hex digits after 0x"}
		}
	} else {
		l.digits(isDigit)
		if l.pos+1 < len(l.src) && l.src[l.pos] == '.' && isDigit(l.src[l.pos+1]) {
			l.pos++
			l.digits(isDigit)
		}
		if l.pos < len(l.src) && (l.src[l.pos] == 'e' || l.src[l.pos] == 'E') {
			if err := l.exponent(start); err != nil {
				return token{}, err
			}
		}
	}
	if l.pos < len(l.src) && isIdentPart(l.src[l.pos]) {
		end := l.pos
		for end < len(l.src) && isIdentPart(l.src[end]) {
			end++
		}
		return token{}, &SyntaxError{Pos: start, Msg: fmt.Sprintf("invalid number %q", l.src[start:end])}
	}
	return token{kind: tokNumber, pos: start, text: l.src[start:l.pos]}, nil
}

// exponent scans [eE][+-]?digits; start is the number's offset.
func (l *lexer) exponent(start int) error {
	l.pos++
	if l.pos < len(l.src) && (l.src[l.pos] == '+' || l.src[l.pos] == '-') {
		l.pos++
	}
	if !l.digits(isDigit) {
		return &SyntaxError{Pos: start, Msg: "invalid number: expected digits in the exponent"}
	}
	return nil
}

// digits consumes bytes accepted by ok and reports whether there was one.
func (l *lexer) digits(ok func(byte) bool) bool {
	start := l.pos
	for l.pos < len(l.src) && ok(l.src[l.pos]) {
		l.pos++
	}
	return l.pos > start
}

func (l *lexer) hasPrefixFold(p string) bool {
	return len(l.src)-l.pos >= len(p) && strings.EqualFold(l.src[l.pos:l.pos+len(p)], p)
}

// str scans a string in single or double quotes; the token's text is the
// decoded value.
func (l *lexer) str() (token, error) {
	start, quote := l.pos, l.src[l.pos]
	l.pos++
	var b strings.Builder
	for l.pos < len(l.src) {
		switch c := l.src[l.pos]; c {
		case quote:
			l.pos++
			return token{kind: tokString, pos: start, text: b.String()}, nil
		case '\\':
			if err := l.escape(&b, start); err != nil {
				return token{}, err
			}
		default:
			b.WriteByte(c)
			l.pos++
		}
	}
	return token{}, &SyntaxError{Pos: start, Msg: "unterminated string"}
}

// escape decodes the escape sequence at l.pos (a backslash) into b: \' \"
// \\ \/ \b \f \n \r \t and \uXXXX (a UTF-16 surrogate pair as two).
// start is the string's offset, for an unterminated one.
func (l *lexer) escape(b *strings.Builder, start int) error {
	at := l.pos
	if at+1 >= len(l.src) {
		return &SyntaxError{Pos: start, Msg: "unterminated string"}
	}
	c := l.src[at+1]
	if r, ok := simpleEscape(c); ok {
		b.WriteByte(r)
		l.pos += 2
		return nil
	}
	if c != 'u' {
		r, _ := utf8.DecodeRuneInString(l.src[at+1:])
		return &SyntaxError{Pos: at, Msg: fmt.Sprintf("invalid escape \\%c in string", r)}
	}
	r, ok := l.hex4(at + 2)
	if !ok {
		return &SyntaxError{Pos: at, Msg: "invalid \\u escape: expected 4 hex digits"}
	}
	l.pos = at + 6
	if utf16.IsSurrogate(r) && l.hasPrefixFold(`\u`) {
		if r2, ok := l.hex4(l.pos + 2); ok {
			if pair := utf16.DecodeRune(r, r2); pair != utf8.RuneError {
				r = pair
				l.pos += 6
			}
		}
	}
	b.WriteRune(r) // a lone surrogate is written as U+FFFD
	return nil
}

// simpleEscape maps the byte after a backslash to its value.
func simpleEscape(c byte) (byte, bool) {
	switch c {
	case '\'', '"', '\\', '/':
		return c, true
	case 'b':
		return '\b', true
	case 'f':
		return '\f', true
	case 'n':
		return '\n', true
	case 'r':
		return '\r', true
	case 't':
		return '\t', true
	}
	return 0, false
}

// hex4 decodes the 4 hex digits at i.
func (l *lexer) hex4(i int) (rune, bool) {
	if i+4 > len(l.src) {
		return 0, false
	}
	var r rune
	for _, c := range []byte(l.src[i : i+4]) {
		if !isHexDigit(c) {
			return 0, false
		}
		r = r<<4 | rune(hexValue(c))
	}
	return r, true
}

func hexValue(c byte) byte {
	switch {
	case isDigit(c):
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// punct scans an operator or punctuation mark.
func (l *lexer) punct() (token, error) {
	start := l.pos
	for _, op := range [...]string{"!=", "<>", "<=", ">="} {
		if strings.HasPrefix(l.src[start:], op) {
			l.pos += 2
			return token{kind: tokPunct, pos: start, text: op}, nil
		}
	}
	if c := l.src[start]; strings.IndexByte("=<>(),.[]*+-/%", c) >= 0 {
		l.pos++
		return token{kind: tokPunct, pos: start, text: l.src[start:l.pos]}, nil
	}
	r, size := utf8.DecodeRuneInString(l.src[start:])
	if r == utf8.RuneError && size <= 1 {
		return token{}, &SyntaxError{Pos: start, Msg: fmt.Sprintf("invalid UTF-8 byte 0x%02x", l.src[start])}
	}
	return token{}, &SyntaxError{Pos: start, Msg: fmt.Sprintf("unexpected character %q", r)}
}
