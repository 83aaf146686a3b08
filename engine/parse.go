package engine

import (
	"bytes"
	"errors"
	"io"
	"regexp"
	"strconv"

	"gopkg.in/yaml.v3"
)

// Parse validates and compiles a handlers file. file names it in
// diagnostics and anchors relative paths (its directory; "" means the
// working directory). Every problem is collected: when there is at least one
// error, Parse returns a nil Set and a Diagnostics error (errors.As-able),
// warnings included. On success the warnings are on Set.Warnings.
func Parse(file string, data []byte, opts Options) (*Set, error) {
	name := file
	if name == "" {
		name = "<input>"
	}
	l := &loader{file: name}
	s := newSet(file, data, opts)
	if root := l.document(data); root != nil {
		l.parseRoot(root, s)
	}
	l.diags.sort()
	if l.diags.HasErrors() {
		return nil, l.diags
	}
	s.warnings = l.diags
	s.finish()
	return s, nil
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// document parses data as exactly one YAML document and returns its root.
func (l *loader) document(data []byte) (root *yaml.Node) {
	defer func() {
		if r := recover(); r != nil {
			l.errorf(nil, "", "cannot parse YAML: %v", r)
			root = nil
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			l.errorf(nil, "", "the file is empty; it needs at least \"version: 1\"")
		} else {
			l.yamlError(err)
		}
		return nil
	}
	var next yaml.Node
	if err := dec.Decode(&next); err == nil {
		l.errorf(&next, "", "only one YAML document is allowed (found a second one after \"---\")")
	} else if !errors.Is(err, io.EOF) {
		l.yamlError(err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		l.errorf(&doc, "", "the file is empty; it needs at least \"version: 1\"")
		return nil
	}
	if !l.checkCost(doc.Content[0]) {
		return nil // walking it would cost too much
	}
	return resolve(doc.Content[0])
}

// yamlError turns a yaml.v3 syntax error into a diagnostic at its line.
func (l *loader) yamlError(err error) {
	msg := err.Error()
	line := 1
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	l.errorf(&yaml.Node{Line: max(line, 1), Column: 1}, "", "YAML syntax error: %s", trimYAMLPrefix(msg))
}

func trimYAMLPrefix(s string) string {
	if len(s) > 6 && s[:6] == "yaml: " {
		return s[6:]
	}
	return s
}

// parseRoot reads the top-level sections into s.
func (l *loader) parseRoot(root *yaml.Node, s *Set) {
	if root.Kind != yaml.MappingNode {
		l.errorf(root, "", "the file must be a mapping with version and methods, got %s", kindName(root))
		return
	}
	by := map[string]field{}
	for _, f := range l.mapping(root, "", topKeys()) {
		by[f.key] = f
	}
	if v, ok := by["version"]; !ok {
		l.errorf(root, "version", "required: add \"version: 1\" at the top")
	} else if n, ok := l.intValue(v.val, "version"); ok && n != 1 {
		l.errorf(v.val, "version", "unsupported version %d; this methodd reads version 1", n)
	}
	if c, ok := by["connection"]; ok {
		s.conn = l.parseConnection(c.val, s.dir)
	} else {
		s.conn = l.parseConnection(nil, s.dir)
	}
	if d, ok := by["defaults"]; ok {
		s.defaults = l.parseDefaults(d.val)
	}
	if t, ok := by["tasks"]; ok {
		s.tasks = l.parseTasks(t.val)
	} else {
		s.tasks = l.parseTasks(nil)
	}
	var b builtinNames
	if bf, ok := by["builtins"]; ok {
		b = l.parseBuiltins(bf.val)
	} else {
		b = l.parseBuiltins(nil)
	}
	mc := &methodCtx{fns: s.funcs.options(), defaults: s.defaults, dir: s.dir, searchPath: s.searchPath}
	if mf, ok := by["methods"]; ok {
		for _, f := range l.mapping(mf.val, "methods", nil) {
			if m := l.parseMethod(f, mc); m != nil {
				s.methods[m.name] = m
			}
		}
	}
	l.addBuiltins(s, b)
}
