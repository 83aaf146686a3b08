package twinquery

import (
	"fmt"
	"strings"
)

// maxDepth bounds the nesting of parentheses and NOTs.
const maxDepth = 128

// parser is a recursive-descent parser over a lexer with one token of
// lookahead (tok). src decides how attribute paths are read.
type parser struct {
	lx    lexer
	tok   token
	src   Source
	depth int
}

// newParser returns a parser positioned on the first token of s.
func newParser(s string, src Source) (*parser, error) {
	p := &parser{lx: lexer{src: s}, src: src}
	return p, p.advance()
}

// advance moves to the next token.
func (p *parser) advance() error {
	t, err := p.lx.next()
	if err != nil {
		return err
	}
	p.tok = t
	return nil
}

// peek returns the token after tok without consuming it; a malformed one
// comes back as tokEOF at its offset.
func (p *parser) peek() token {
	lx := p.lx
	t, err := lx.next()
	if err != nil {
		return token{kind: tokEOF, pos: lx.pos}
	}
	return t
}

func isKeyword(t token, kw string) bool {
	return t.kind == tokIdent && strings.EqualFold(t.text, kw)
}

func isPunct(t token, s string) bool { return t.kind == tokPunct && t.text == s }

// describe names a token for an error message.
func describe(t token) string {
	switch t.kind {
	case tokEOF:
		return "end of input"
	case tokString:
		return "a string"
	}
	return "'" + t.text + "'"
}

// errorf returns a *SyntaxError at pos.
func errorf(pos int, format string, args ...any) error {
	return &SyntaxError{Pos: pos, Msg: fmt.Sprintf(format, args...)}
}

// expected is the error for a token that is not what was wanted.
func (p *parser) expected(what string) error {
	return errorf(p.tok.pos, "expected %s, found %s", what, describe(p.tok))
}

// unexpected is the error for a token that cannot follow what came before.
func (p *parser) unexpected() error {
	return errorf(p.tok.pos, "unexpected %s", describe(p.tok))
}

// unsupported is the error for valid IoT Hub syntax this subset refuses.
func unsupported(pos int, what string) error {
	return errorf(pos, "%s is not supported by this hub", what)
}

// enter counts one level of nesting at pos; leave undoes it.
func (p *parser) enter(pos int) error {
	if p.depth++; p.depth > maxDepth {
		return errorf(pos, "condition nested deeper than %d levels", maxDepth)
	}
	return nil
}

func (p *parser) leave() { p.depth-- }

// parseOr parses: and {OR and}.
func (p *parser) parseOr() (expr, error) {
	return p.parseLogic("OR", false, p.parseAnd)
}

// parseAnd parses: not {AND not}.
func (p *parser) parseAnd() (expr, error) {
	return p.parseLogic("AND", true, p.parseNot)
}

// parseLogic parses operands joined by the keyword kw.
func (p *parser) parseLogic(kw string, and bool, operand func() (expr, error)) (expr, error) {
	first, err := operand()
	if err != nil || !isKeyword(p.tok, kw) {
		return first, err
	}
	e := logicExpr{and: and, terms: []expr{first}}
	for isKeyword(p.tok, kw) {
		if err := p.advance(); err != nil {
			return nil, err
		}
		t, err := operand()
		if err != nil {
			return nil, err
		}
		e.terms = append(e.terms, t)
	}
	return e, nil
}

// parseNot parses: NOT not | predicate.
func (p *parser) parseNot() (expr, error) {
	if !isKeyword(p.tok, "NOT") {
		return p.parsePredicate()
	}
	if err := p.enter(p.tok.pos); err != nil {
		return nil, err
	}
	defer p.leave()
	if err := p.advance(); err != nil {
		return nil, err
	}
	x, err := p.parseNot()
	if err != nil {
		return nil, err
	}
	return notExpr{x}, nil
}

// parsePredicate parses: operand [cmpop operand | (IN|NIN) list].
func (p *parser) parsePredicate() (expr, error) {
	l, err := p.parseOperand()
	if err != nil {
		return nil, err
	}
	if op, ok := cmpOpOf(p.tok.text); ok && p.tok.kind == tokPunct {
		if err := p.advance(); err != nil {
			return nil, err
		}
		r, err := p.parseOperand()
		if err != nil {
			return nil, err
		}
		return cmpExpr{op: op, l: l, r: r}, nil
	}
	switch {
	case isKeyword(p.tok, "IN"), isKeyword(p.tok, "NIN"):
		negate := isKeyword(p.tok, "NIN")
		list, err := p.parseList()
		if err != nil {
			return nil, err
		}
		return inExpr{l: l, list: list, negate: negate}, nil
	case isKeyword(p.tok, "NOT") && isKeyword(p.peek(), "IN"):
		return nil, unsupported(p.tok.pos, "NOT IN (use NIN [...])")
	}
	return l, nil
}

// parseOperand parses a constant, a path, IS_DEFINED(path) or a
// parenthesized condition, and refuses arithmetic after it.
func (p *parser) parseOperand() (expr, error) {
	e, err := p.parsePrimary()
	if err != nil {
		return nil, err
	}
	if p.tok.kind == tokPunct && strings.Contains("+-*/%", p.tok.text) {
		return nil, unsupported(p.tok.pos, fmt.Sprintf("arithmetic ('%s')", p.tok.text))
	}
	return e, nil
}

// parsePrimary parses an operand without what may follow it.
func (p *parser) parsePrimary() (expr, error) {
	if v, ok, err := p.parseConstant(); ok || err != nil {
		return constExpr{v}, err
	}
	switch {
	case isPunct(p.tok, "("):
		return p.parseParens()
	case isPunct(p.tok, "["):
		return nil, errorf(p.tok.pos, "array constants are only supported after IN and NIN")
	case p.tok.kind == tokIdent && !isReserved(p.tok.text):
		return p.parsePathOrCall()
	}
	return nil, p.expected("a value")
}

// parseParens parses '(' condition ')'.
func (p *parser) parseParens() (expr, error) {
	if err := p.enter(p.tok.pos); err != nil {
		return nil, err
	}
	defer p.leave()
	if err := p.advance(); err != nil {
		return nil, err
	}
	x, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	if !isPunct(p.tok, ")") {
		return nil, p.expected("')'")
	}
	return x, p.advance()
}

// isReserved reports whether an identifier is a keyword that cannot start
// a path.
func isReserved(word string) bool {
	switch strings.ToUpper(word) {
	case "AND", "OR", "NOT", "IN", "NIN", "SELECT", "FROM", "WHERE", "TOP",
		"GROUP", "BY", "ORDER", "AS", "JOIN":
		return true
	}
	return false
}

// parseConstant parses a string, a number (with an optional leading '-'),
// true, false, null or undefined. ok is false, with nothing consumed, when
// the token starts no constant.
func (p *parser) parseConstant() (v value, ok bool, err error) {
	t := p.tok
	switch {
	case t.kind == tokString:
		v = value{kind: kindString, s: t.text}
	case t.kind == tokNumber:
		if v, err = numberValue(t); err != nil {
			return v, true, err
		}
	case isPunct(t, "-"):
		return p.parseNegative()
	case t.kind == tokIdent:
		if v, ok = wordValue(t.text); !ok {
			return v, false, nil
		}
	default:
		return v, false, nil
	}
	return v, true, p.advance()
}

// parseNegative parses '-' number.
func (p *parser) parseNegative() (value, bool, error) {
	minus := p.tok
	if err := p.advance(); err != nil {
		return value{}, true, err
	}
	if p.tok.kind != tokNumber {
		return value{}, true, unsupported(minus.pos, "arithmetic ('-')")
	}
	v, err := numberValue(p.tok)
	if err != nil {
		return v, true, err
	}
	return v.negate(), true, p.advance()
}

// numberValue converts a number token.
func numberValue(t token) (value, error) {
	var v value
	if len(t.text) > 2 && (t.text[1] == 'x' || t.text[1] == 'X') {
		v = hexValueOf(t.text[2:])
	} else {
		v = decimalValue(t.text)
	}
	if v.kind != kindNumber {
		return v, errorf(t.pos, "number %s out of range", t.text)
	}
	return v, nil
}

// wordValue is the constant a keyword names: true, false, null, undefined.
func wordValue(word string) (value, bool) {
	switch strings.ToLower(word) {
	case "true":
		return boolValue(true), true
	case "false":
		return boolValue(false), true
	case "null":
		return value{kind: kindNull}, true
	case "undefined":
		return value{}, true
	}
	return value{}, false
}

// parseList parses IN/NIN (the current token) and '[' constant {',' constant} ']'.
func (p *parser) parseList() ([]value, error) {
	kw := strings.ToUpper(p.tok.text)
	if err := p.advance(); err != nil {
		return nil, err
	}
	if !isPunct(p.tok, "[") {
		return nil, p.expected("'[' after " + kw)
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	list := []value{}
	if isPunct(p.tok, "]") {
		return list, p.advance()
	}
	for {
		v, ok, err := p.parseConstant()
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, p.expected("a constant in the " + kw + " list")
		}
		list = append(list, v)
		switch {
		case isPunct(p.tok, "]"):
			return list, p.advance()
		case !isPunct(p.tok, ","):
			return nil, p.expected("',' or ']'")
		}
		if err := p.advance(); err != nil {
			return nil, err
		}
	}
}
