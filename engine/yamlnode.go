package engine

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// loader walks a parsed YAML document and collects diagnostics; it never
// stops at the first problem.
type loader struct {
	file  string
	diags Diagnostics
}

// field is one key/value pair of a YAML mapping, aliases resolved.
type field struct {
	key     string
	keyNode *yaml.Node
	val     *yaml.Node
}

// add records a diagnostic at n. The message is prefixed with path when path
// is not empty.
func (l *loader) add(sev string, n *yaml.Node, path, msg string) {
	line, col := 1, 1
	if n != nil && n.Line > 0 {
		line, col = n.Line, max(n.Column, 1)
	}
	if path != "" {
		msg = path + ": " + msg
	}
	l.diags = append(l.diags, Diagnostic{File: l.file, Line: line, Col: col, Path: path, Message: msg, Severity: sev})
}

func (l *loader) errorf(n *yaml.Node, path, format string, a ...any) {
	l.add(SeverityError, n, path, fmt.Sprintf(format, a...))
}

func (l *loader) warnf(n *yaml.Node, path, format string, a ...any) {
	l.add(SeverityWarning, n, path, fmt.Sprintf(format, a...))
}

// resolve follows alias nodes to the node they name.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 64; i++ {
		n = n.Alias
	}
	return n
}

// join appends keys to a YAML path.
func join(path string, keys ...string) string {
	for _, k := range keys {
		if path == "" {
			path = k
		} else {
			path += "." + k
		}
	}
	return path
}

// kindName names a node's kind for messages ("a mapping", "a list", ...).
func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "empty (null)"
		}
		return "a scalar"
	}
	return "a YAML node"
}

// mapping returns the pairs of mapping node n in file order. With known
// non-nil, any other key is an error with a did-you-mean suggestion. Duplicate
// keys are errors (yaml.v3 does not reject them in Node form). Merge keys
// (<<: *anchor) are expanded; explicit keys override merged ones. A null node
// is an empty mapping.
func (l *loader) mapping(n *yaml.Node, path string, known []string) []field {
	n = resolve(n)
	if n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null") {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		l.errorf(n, path, "must be a mapping, got %s", kindName(n))
		return nil
	}
	var merged, explicit []field
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
			merged = append(merged, l.mergeFields(v, path, 0)...)
			continue
		}
		rk := resolve(k)
		if rk == nil || rk.Kind != yaml.ScalarNode {
			l.errorf(k, path, "keys must be plain strings")
			continue
		}
		if first, dup := seen[rk.Value]; dup {
			l.errorf(k, join(path, rk.Value), "duplicate key %q (first at line %d)", rk.Value, first.Line)
			continue
		}
		seen[rk.Value] = k
		if path == "" && strings.HasPrefix(rk.Value, "x-") {
			continue // top-level extension keys hold YAML anchors for reuse
		}
		if known != nil && !contains(known, rk.Value) {
			where := path
			if where == "" {
				where = "the top level"
			}
			l.add(SeverityError, k, "", unknownKeyMessage(rk.Value, where, known))
			l.diags[len(l.diags)-1].Path = join(path, rk.Value)
			continue
		}
		explicit = append(explicit, field{key: rk.Value, keyNode: k, val: resolve(v)})
	}
	out := make([]field, 0, len(merged)+len(explicit))
	for _, m := range merged {
		if _, ok := seen[m.key]; ok {
			continue
		}
		if known != nil && !contains(known, m.key) {
			l.add(SeverityError, m.keyNode, "", unknownKeyMessage(m.key, path, known))
			continue
		}
		seen[m.key] = m.keyNode
		out = append(out, m)
	}
	return append(out, explicit...)
}

// mergeFields expands the value of a merge key: a mapping or a list of them.
func (l *loader) mergeFields(v *yaml.Node, path string, depth int) []field {
	v = resolve(v)
	if depth > 8 || v == nil {
		l.errorf(v, path, "merge key (<<) nested too deeply")
		return nil
	}
	switch v.Kind {
	case yaml.MappingNode:
		return l.mapping(v, path, nil)
	case yaml.SequenceNode:
		var out []field
		for _, item := range v.Content {
			out = append(out, l.mergeFields(item, path, depth+1)...)
		}
		return out
	}
	l.errorf(v, path, "merge key (<<) needs a mapping or a list of mappings")
	return nil
}

func contains(list []string, s string) bool {
	return slices.Contains(list, s)
}

// scalar returns the text of a scalar node; null is "". Other kinds are an
// error and ok is false.
func (l *loader) scalar(n *yaml.Node, path string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		l.errorf(n, path, "must be a single value, got %s", kindName(n))
		return "", false
	}
	if n.Tag == "!!null" {
		return "", true
	}
	return n.Value, true
}

// intValue decodes an integer scalar.
func (l *loader) intValue(n *yaml.Node, path string) (int, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
		l.errorf(n, path, "must be an integer, got %s", describe(n))
		return 0, false
	}
	v, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, 64)
	if err != nil || v > 1<<31 || v < -(1<<31) {
		l.errorf(n, path, "integer %s is out of range", n.Value)
		return 0, false
	}
	return int(v), true
}

// boolValue decodes a boolean scalar.
func (l *loader) boolValue(n *yaml.Node, path string) (bool, bool) {
	var b bool
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" || n.Decode(&b) != nil {
		l.errorf(n, path, "must be true or false, got %s", describe(n))
		return false, false
	}
	return b, true
}

// durationForms names the accepted ways to write a duration, for errors.
const durationForms = "a number of seconds (60, 1.5) or a number with a unit, such as 10s, 500ms or 1m30s"

// duration decodes a duration that must be positive: a Go duration string
// ("10s", "1m30s") or a plain YAML number (int or float) of seconds
// (60, 1.5). A quoted number is a string and is refused.
func (l *loader) duration(n *yaml.Node, path string) (time.Duration, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		l.errorf(n, path, "must be a duration: %s, got %s", durationForms, describe(n))
		return 0, false
	}
	var d time.Duration
	var err error
	if n.Tag == "!!int" || n.Tag == "!!float" {
		d, err = secondsNode(n)
	} else if d, err = time.ParseDuration(n.Value); err != nil {
		l.errorf(n, path, "invalid duration %q: use %s", n.Value, durationForms)
		return 0, false
	}
	if err != nil {
		l.errorf(n, path, "invalid duration %q: %v; use %s", n.Value, err, durationForms)
		return 0, false
	}
	if d <= 0 {
		l.errorf(n, path, "duration must be positive, got %s", n.Value)
		return 0, false
	}
	return d, true
}

// secondsNode converts a YAML int or float scalar of seconds to a
// duration, rounded to the nanosecond; NaN, infinities and values past
// time.Duration's range (about 292 years) are errors, never a wrap-around.
func secondsNode(n *yaml.Node) (time.Duration, error) {
	var sec float64
	if err := n.Decode(&sec); err != nil {
		return 0, errors.New("not a number")
	}
	d, ok := Seconds(sec)
	if !ok {
		return 0, errors.New("out of range")
	}
	return d, nil
}

// describe names a node for "got ..." messages.
func describe(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode && n.Tag != "!!null" {
		return strconv.Quote(n.Value)
	}
	return kindName(n)
}

// Bounds on the shape of a handlers file's YAML, checked before the file is
// walked (see docs/reliability.md, "inputs and resource bounds"). A file past
// one is refused with one error at the node where the bound was crossed.
const (
	// MaxAliasNodes is how many YAML nodes aliases (*name, including the
	// values of merge keys <<) may expand to in one file, counted over every
	// use: an alias of a 3-node mapping used 50 times costs 150. Real files
	// use a few hundred at most; a "billion laughs" file needs millions. The
	// walk of 10 000 expanded nodes takes a few milliseconds.
	MaxAliasNodes = 10_000
	// MaxAliasBytes is how many bytes of scalar text aliases may expand to
	// in one file (each use of an aliased expression is compiled again).
	MaxAliasBytes = 1 << 20
	// MaxNesting is how deeply a file's YAML may nest, aliases expanded; a
	// handlers file needs about 8 levels (methods, a method, params, a
	// parameter, a default value...).
	MaxNesting = 100
)

// expansion is the size of a YAML subtree with its aliases expanded. Counts
// saturate just past the bounds, so they never overflow.
type expansion struct {
	nodes, bytes, height int
	cycle                bool // an alias in it leads back to a node being expanded
}

// costCheck measures a document's alias expansion before the loader walks it.
type costCheck struct {
	l      *loader
	memo   map[*yaml.Node]expansion
	active map[*yaml.Node]bool
	path   []string // YAML path of the node being visited, for diagnostics
	nodes  int      // nodes expanded through aliases so far
	bytes  int      // scalar bytes expanded through aliases so far
}

// checkCost reports whether root is within MaxAliasNodes, MaxAliasBytes and
// MaxNesting; when it is not, it records one error at the offending alias or
// node and the document must not be walked. It takes time linear in the
// number of nodes of the document as written: each alias target is measured
// once.
func (l *loader) checkCost(root *yaml.Node) bool {
	c := &costCheck{l: l, memo: map[*yaml.Node]expansion{}, active: map[*yaml.Node]bool{}}
	return c.walk(root, 1)
}

// walk visits the document as written (aliases not followed) in file order.
func (c *costCheck) walk(n *yaml.Node, depth int) bool {
	if depth > MaxNesting {
		c.l.errorf(n, c.where(), "nested more than %d levels deep (the limit for a handlers file)", MaxNesting)
		return false
	}
	switch n.Kind {
	case yaml.AliasNode:
		return c.alias(n, depth)
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if !c.walk(k, depth+1) {
				return false
			}
			c.path = append(c.path, "."+k.Value)
			ok := c.walk(v, depth+1)
			c.path = c.path[:len(c.path)-1]
			if !ok {
				return false
			}
		}
	case yaml.SequenceNode:
		for i, item := range n.Content {
			c.path = append(c.path, "["+strconv.Itoa(i)+"]")
			ok := c.walk(item, depth+1)
			c.path = c.path[:len(c.path)-1]
			if !ok {
				return false
			}
		}
	}
	return true
}

// alias adds the expansion of alias node a, at depth, to the file's total.
func (c *costCheck) alias(a *yaml.Node, depth int) bool {
	e := c.expand(a.Alias, 1)
	c.nodes = min(c.nodes+e.nodes, MaxAliasNodes+1)
	c.bytes = min(c.bytes+e.bytes, MaxAliasBytes+1)
	switch {
	case e.cycle:
		c.l.errorf(a, c.where(), "alias *%s is inside the value it names: it would expand forever", a.Value)
	case depth-1+e.height > MaxNesting:
		c.l.errorf(a, c.where(), "alias *%s nests more than %d levels deep once expanded (the limit for a handlers file)", a.Value, MaxNesting)
	case c.nodes > MaxAliasNodes:
		c.l.errorf(a, c.where(), "alias *%s: aliases and merge keys expand to more than %d YAML nodes by here (the limit for a handlers file); use fewer or smaller aliases", a.Value, MaxAliasNodes)
	case c.bytes > MaxAliasBytes:
		c.l.errorf(a, c.where(), "alias *%s: aliases and merge keys expand to more than %d bytes of text by here (the limit for a handlers file); use fewer or smaller aliases", a.Value, MaxAliasBytes)
	default:
		return true
	}
	return false
}

// expand measures n with its aliases followed; rel is n's depth below the
// alias being measured. A measurement past a bound is not exact (it
// saturates, or stops descending past MaxNesting), which is safe because it
// ends the check.
func (c *costCheck) expand(n *yaml.Node, rel int) expansion {
	if e, ok := c.memo[n]; ok {
		return e
	}
	if c.active[n] {
		return expansion{cycle: true}
	}
	e := expansion{nodes: 1, bytes: len(n.Value), height: 1}
	if rel > MaxNesting {
		e.height = MaxNesting + 1
		return e
	}
	c.active[n] = true
	for _, ch := range n.Content {
		if ch.Kind == yaml.AliasNode && ch.Alias != nil {
			ch = ch.Alias
		}
		ce := c.expand(ch, rel+1)
		e.nodes = min(e.nodes+ce.nodes, MaxAliasNodes+1)
		e.bytes = min(e.bytes+ce.bytes, MaxAliasBytes+1)
		e.height = min(max(e.height, ce.height+1), MaxNesting+1)
		e.cycle = e.cycle || ce.cycle
		if e.cycle || e.nodes > MaxAliasNodes || e.bytes > MaxAliasBytes || e.height > MaxNesting {
			break
		}
	}
	delete(c.active, n)
	c.memo[n] = e
	return e
}

// where is the YAML path of the node being visited ("methods.m.run[0]").
// Past 16 segments the rest is elided.
func (c *costCheck) where() string {
	p := c.path
	if len(p) > 16 {
		p = append(p[:16:16], "...")
	}
	return strings.TrimPrefix(strings.Join(p, ""), ".")
}
