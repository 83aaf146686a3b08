// Package twinquery is the subset of the IoT Hub query language that twin
// and job queries use (fleet reference §3.2, §3.3): a parser with
// positions in its errors, and an evaluator over JSON documents.
//
// It is stdlib only and has no state: a parsed Query is immutable and safe
// for concurrent use.
package twinquery

import "fmt"

// Source is what a query reads: FROM devices, devices.modules or
// devices.jobs.
type Source int

// The sources of a query.
const (
	Devices Source = iota + 1
	Modules
	Jobs
)

// MaxLength is the longest query accepted, in bytes (§3.2).
const MaxLength = 8192

// Query is a parsed `SELECT * FROM <source> [WHERE <condition>]`.
type Query struct {
	From Source
	cond *Condition // nil: every document
}

// Condition is a parsed WHERE body (what a job's queryCondition holds).
type Condition struct {
	root expr // nil: every document (the queryCondition "*")
}

// SyntaxError is a query the language refuses: Pos is the 0-based byte
// offset where the problem was found, Msg says what was expected.
type SyntaxError struct {
	Pos int
	Msg string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("syntax error at position %d: %s", e.Pos, e.Msg)
}

// Parse parses a whole query. Keywords are case-insensitive. The error is
// a *SyntaxError; valid IoT Hub syntax outside the subset (TOP,
// projections, aggregates, GROUP BY, arithmetic, functions other than
// IS_DEFINED) is refused with a message saying it is "not supported by
// this hub". In a devices.jobs query every path starts with devices.jobs.
// and is read in the per-device job record with that prefix removed; in a
// devices.modules query a devices.modules. prefix is removed.
func Parse(s string) (*Query, error) { return parseQuery(s) }

// ParseCondition parses a WHERE body alone, as a job's queryCondition,
// with paths read in device twins; "*" (surrounding white space ignored)
// means every device and gives a Condition that matches everything. A
// full SELECT query is refused. The error is a *SyntaxError.
func ParseCondition(s string) (*Condition, error) { return parseCondition(s) }

// Where returns the query's condition; nil matches every document.
func (q *Query) Where() *Condition { return q.cond }

// Match reports whether doc (a JSON object decoded with UseNumber:
// map[string]any, []any, json.Number, string, bool, nil) satisfies c. A nil
// Condition matches everything. Only the Boolean true matches: a missing
// path, null, or a comparison between non-primitives does not. Logic is
// three-valued (see eval.go): NOT of an undefined comparison is still
// undefined, so neither `x = 1` nor `NOT x = 1` matches a document without
// x. Top-level system properties (deviceId, status, …) match
// case-insensitively; everything below them is case-sensitive.
func (c *Condition) Match(doc map[string]any) bool {
	if c == nil || c.root == nil {
		return true
	}
	return c.root.eval(doc).isTrue()
}
