package engine

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/types"
	"gopkg.in/yaml.v3"
)

// template is a string with ${expr} parts (a run element or an env value).
// "$${" stands for a literal "${". Evaluating a template never splits it:
// one run element stays one argument.
type template struct {
	parts []tmplPart
	needs needs
}

type tmplPart struct {
	lit  string
	prog *program // nil for a literal part
}

// rawPart is a lexed part: literal text, or expression source starting at
// rune offset off of the whole text.
type rawPart struct {
	text   string
	isExpr bool
	off    int
}

// lexTemplate splits s into literal and ${expr} parts. Inside an expression,
// braces nest and quoted strings are skipped, so `${ {"a": "}"}.a }` works.
func lexTemplate(s string) ([]rawPart, error) {
	var parts []rawPart
	var lit strings.Builder
	for i := 0; i < len(s); {
		if strings.HasPrefix(s[i:], "$${") {
			lit.WriteString("${")
			i += 3
			continue
		}
		if !strings.HasPrefix(s[i:], "${") {
			lit.WriteByte(s[i])
			i++
			continue
		}
		end, err := exprEnd(s, i+2)
		if err != nil {
			return nil, err
		}
		if lit.Len() > 0 {
			parts = append(parts, rawPart{text: lit.String()})
			lit.Reset()
		}
		parts = append(parts, rawPart{text: s[i+2 : end], isExpr: true, off: utf8.RuneCountInString(s[:i+2])})
		i = end + 1
	}
	if lit.Len() > 0 || len(parts) == 0 {
		parts = append(parts, rawPart{text: lit.String()})
	}
	return parts, nil
}

// exprEnd returns the index of the "}" closing the expression starting at i.
func exprEnd(s string, i int) (int, error) {
	depth := 1
	start := i
	for ; i < len(s); i++ {
		switch c := s[i]; c {
		case '"', '\'', '`':
			j := i + 1
			for j < len(s) && s[j] != c {
				if s[j] == '\\' && c != '`' {
					j++
				}
				j++
			}
			if j >= len(s) {
				return 0, fmt.Errorf("unterminated string in ${...} starting at column %d", start-1)
			}
			i = j
		case '{':
			depth++
		case '}':
			depth--
			if depth == 0 {
				return i, nil
			}
		}
	}
	return 0, fmt.Errorf("unterminated ${ at column %d (write $${ for a literal ${)", start-1)
}

// compileTemplate compiles the template text of node n.
func (l *loader) compileTemplate(n *yaml.Node, path, text string, env types.Map, fns []expr.Option) *template {
	raw, err := lexTemplate(text)
	if err != nil {
		l.errorf(n, path, "%v", err)
		return nil
	}
	t := &template{}
	ok := true
	for _, r := range raw {
		if !r.isExpr {
			t.parts = append(t.parts, tmplPart{lit: r.text})
			continue
		}
		p := l.compileExpr(n, path, r.text, r.off, env, fns, yieldAny)
		if p == nil {
			ok = false
			continue
		}
		t.needs |= p.needs
		t.parts = append(t.parts, tmplPart{prog: p})
	}
	if !ok {
		return nil
	}
	return t
}

// literal returns the template's text when it has no expressions.
func (t *template) literal() (string, bool) {
	if len(t.parts) == 1 && t.parts[0].prog == nil {
		return t.parts[0].lit, true
	}
	return "", false
}

// eval renders the template against env.
func (t *template) eval(ev *evaluator, env map[string]any) (string, error) {
	if s, ok := t.literal(); ok {
		return s, nil
	}
	var b strings.Builder
	for _, p := range t.parts {
		if p.prog == nil {
			b.WriteString(p.lit)
			continue
		}
		v, err := ev.run(p.prog, env)
		if err != nil {
			return "", err
		}
		s, err := stringify(v)
		if err != nil {
			return "", fmt.Errorf("%s: %w", p.prog.path, err)
		}
		b.WriteString(s)
	}
	return b.String(), nil
}

// stringify renders an expression value as text: strings verbatim, null as
// "", integers in decimal, everything else as its JSON encoding.
func stringify(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case nil:
		return "", nil
	case int:
		return strconv.Itoa(x), nil
	case bool:
		return strconv.FormatBool(x), nil
	case json.Number:
		return string(x), nil
	}
	if _, err := appendJSON(nil, v, 0); err != nil { // bounded in size first
		return "", fmt.Errorf("cannot render value as text: %w", err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("cannot render value as text: %w", err)
	}
	return string(b), nil
}
