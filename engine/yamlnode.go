package engine

import (
	"fmt"
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
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
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

// duration decodes a Go duration ("10s", "1m30s") that must be positive.
func (l *loader) duration(n *yaml.Node, path string) (time.Duration, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		l.errorf(n, path, "must be a duration such as 10s or 1m30s, got %s", describe(n))
		return 0, false
	}
	d, err := time.ParseDuration(n.Value)
	if err != nil {
		l.errorf(n, path, "invalid duration %q: use a number with a unit, such as 10s, 500ms or 1m30s", n.Value)
		return 0, false
	}
	if d <= 0 {
		l.errorf(n, path, "duration must be positive, got %s", n.Value)
		return 0, false
	}
	return d, true
}

// describe names a node for "got ..." messages.
func describe(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode && n.Tag != "!!null" {
		return strconv.Quote(n.Value)
	}
	return kindName(n)
}
