package engine

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Severities of a Diagnostic.
const (
	SeverityError   = "error"
	SeverityWarning = "warning"
)

// Diagnostic is one problem found while loading a handlers file, with the
// position of the YAML node it concerns (1-based line and column) and the
// node's path (for example "methods.ping.reply.payload").
type Diagnostic struct {
	File     string `json:"file"`
	Line     int    `json:"line"`
	Col      int    `json:"col"`
	Path     string `json:"path"`
	Message  string `json:"message"`
	Severity string `json:"severity"`
}

// String formats d as "FILE:LINE:COL: message"; warnings read
// "FILE:LINE:COL: warning: message". A problem of the whole file (Line 0,
// such as its permissions) reads "FILE: message".
func (d Diagnostic) String() string {
	pos := d.File
	if d.Line > 0 {
		pos = fmt.Sprintf("%s:%d:%d", d.File, d.Line, d.Col)
	}
	if d.Severity == SeverityWarning {
		return pos + ": warning: " + d.Message
	}
	return pos + ": " + d.Message
}

// Diagnostics is a list of problems, ordered by position. As an error it is
// what Parse returns when a file has at least one error.
type Diagnostics []Diagnostic

// Error joins every diagnostic's String with newlines.
func (ds Diagnostics) Error() string {
	lines := make([]string, len(ds))
	for i, d := range ds {
		lines[i] = d.String()
	}
	return strings.Join(lines, "\n")
}

// HasErrors reports whether any diagnostic is an error (not a warning).
func (ds Diagnostics) HasErrors() bool {
	return slices.ContainsFunc(ds, func(d Diagnostic) bool { return d.Severity != SeverityWarning })
}

// sort orders ds by line, column, then message, so output is stable.
func (ds Diagnostics) sort() {
	slices.SortStableFunc(ds, func(a, b Diagnostic) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Col, b.Col), strings.Compare(a.Message, b.Message))
	})
}
