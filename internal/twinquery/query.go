package twinquery

import (
	"fmt"
	"strings"
)

// parseQuery parses `SELECT * FROM <source> [WHERE <condition>]`.
func parseQuery(s string) (*Query, error) {
	if err := checkLength(s); err != nil {
		return nil, err
	}
	p, err := newParser(s, 0)
	if err != nil {
		return nil, err
	}
	if err := p.parseSelect(); err != nil {
		return nil, err
	}
	q := &Query{}
	if q.From, err = p.parseFrom(); err != nil {
		return nil, err
	}
	p.src = q.From
	if isKeyword(p.tok, "WHERE") {
		if err := p.advance(); err != nil {
			return nil, err
		}
		root, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		q.cond = &Condition{root: root}
		return q, p.parseEnd("")
	}
	return q, p.parseEnd("WHERE or end of query")
}

// checkLength refuses a query longer than MaxLength.
func checkLength(s string) error {
	if len(s) > MaxLength {
		return errorf(MaxLength, "query longer than %d bytes", MaxLength)
	}
	return nil
}

// parseSelect parses SELECT *, refusing TOP, projections and aggregates.
func (p *parser) parseSelect() error {
	if !isKeyword(p.tok, "SELECT") {
		return p.expected("SELECT")
	}
	if err := p.advance(); err != nil {
		return err
	}
	t := p.tok
	switch {
	case isKeyword(t, "TOP"):
		return unsupported(t.pos, "SELECT TOP")
	case isPunct(t, "*"):
		return p.advance()
	case t.kind == tokEOF:
		return p.expected("'*'")
	case isAggregate(t.text) && isPunct(p.peek(), "("):
		return unsupported(t.pos, fmt.Sprintf("aggregate %s()", strings.ToUpper(t.text)))
	}
	return unsupported(t.pos, "a projection (only SELECT * is)")
}

// parseFrom parses FROM devices | devices.modules | devices.jobs.
func (p *parser) parseFrom() (Source, error) {
	const sources = "devices, devices.modules or devices.jobs"
	if !isKeyword(p.tok, "FROM") {
		return 0, p.expected("FROM")
	}
	if err := p.advance(); err != nil {
		return 0, err
	}
	if !isKeyword(p.tok, "devices") {
		return 0, p.expected(sources)
	}
	if err := p.advance(); err != nil {
		return 0, err
	}
	if !isPunct(p.tok, ".") {
		return Devices, nil
	}
	if err := p.advance(); err != nil {
		return 0, err
	}
	src := Source(0)
	switch {
	case isKeyword(p.tok, "modules"):
		src = Modules
	case isKeyword(p.tok, "jobs"):
		src = Jobs
	default:
		return 0, p.expected(sources)
	}
	return src, p.advance()
}

// parseEnd requires the end of input, refusing GROUP BY and ORDER BY;
// what names what else could have come.
func (p *parser) parseEnd(what string) error {
	switch {
	case p.tok.kind == tokEOF:
		return nil
	case isKeyword(p.tok, "GROUP"):
		return unsupported(p.tok.pos, "GROUP BY")
	case isKeyword(p.tok, "ORDER"):
		return unsupported(p.tok.pos, "ORDER BY")
	case what != "":
		return p.expected(what)
	}
	return p.unexpected()
}

// parseCondition parses a WHERE body alone; "*" is every device.
func parseCondition(s string) (*Condition, error) {
	if err := checkLength(s); err != nil {
		return nil, err
	}
	if strings.Trim(s, spaces) == "*" {
		return &Condition{}, nil
	}
	p, err := newParser(s, Devices)
	if err != nil {
		return nil, err
	}
	if isKeyword(p.tok, "SELECT") {
		return nil, errorf(p.tok.pos, "a job's queryCondition is the WHERE body only, not a SELECT query")
	}
	if p.tok.kind == tokEOF {
		return nil, p.expected("a condition")
	}
	root, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	return &Condition{root: root}, p.parseEnd("")
}
