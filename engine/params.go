package engine

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/expr-lang/expr/types"
	"gopkg.in/yaml.v3"
)

// typeAliases maps type names of other languages to ours, for did-you-mean.
var typeAliases = map[string]string{
	"int": "integer", "float": "number", "double": "number", "bool": "boolean",
	"str": "string", "list": "array", "map": "object", "dict": "object",
}

// param is one compiled parameter of a method's params schema.
type param struct {
	name        string
	description string
	typ         string
	required    bool
	def         any // JSON-shaped (float64 numbers, int for integer params); nil when hasDef is false
	hasDef      bool
	enum        []any
	pattern     *regexp.Regexp
	patternSrc  string
	min, max    *float64
	envName     string // METHODD_PARAM_<NAME>
}

// paramError is a payload that violates the schema: a 400 naming the field.
type paramError struct {
	param string
	msg   string
}

func (e *paramError) Error() string { return e.msg }

// exprType is the static type params.<name> has in expressions.
func (p *param) exprType() types.Type {
	switch p.typ {
	case "string":
		return types.String
	case "integer":
		return types.Int
	case "number":
		return types.Float64
	case "boolean":
		return types.Bool
	case "object":
		return types.TypeOf(map[string]any{})
	case "array":
		return types.TypeOf([]any{})
	}
	return types.Any
}

// paramEnvName maps a parameter name to its environment variable:
// METHODD_PARAM_ + the name upper-cased, every byte that is not an ASCII
// letter or digit replaced by "_".
func paramEnvName(name string) string {
	var b strings.Builder
	b.WriteString("METHODD_PARAM_")
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z':
			b.WriteByte(c - 'a' + 'A')
		case c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
			b.WriteByte(c)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

// parseParams compiles a method's params mapping, in file order.
func (l *loader) parseParams(n *yaml.Node, path string) []*param {
	var out []*param
	envNames := map[string]string{}
	for _, f := range l.mapping(n, path, nil) {
		p := l.parseParam(f, join(path, f.key))
		if p == nil {
			continue
		}
		if other, dup := envNames[p.envName]; dup {
			l.errorf(f.keyNode, join(path, f.key), "parameter %q and %q both map to environment variable %s; rename one", other, f.key, p.envName)
			continue
		}
		envNames[p.envName] = f.key
		out = append(out, p)
	}
	return out
}

func (l *loader) parseParam(f field, path string) *param {
	if f.key == "" {
		l.errorf(f.keyNode, path, "parameter name must not be empty")
		return nil
	}
	p := &param{name: f.key, envName: paramEnvName(f.key)}
	if v := resolve(f.val); v != nil && v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
		// mapping returns nothing for null; a parameter without a type
		// must not vanish from the method without a word.
		l.errorf(f.val, path, "parameter must be a mapping with a type (one of %s), got null", strings.Join(paramTypes(), ", "))
		return nil
	}
	fields := l.mapping(f.val, path, paramKeys())
	if v := resolve(f.val); v == nil || v.Kind != yaml.MappingNode {
		return nil // mapping reported it
	}
	byKey := map[string]*yaml.Node{}
	for _, pf := range fields {
		byKey[pf.key] = pf.val
	}
	before := len(l.diags)
	if t, ok := byKey["type"]; !ok {
		l.errorf(f.val, path, "type is required (one of %s)", strings.Join(paramTypes(), ", "))
	} else if s, ok := l.scalar(t, join(path, "type")); ok {
		if !contains(paramTypes(), s) {
			msg := fmt.Sprintf("unknown parameter type %q (valid types: %s)", s, strings.Join(paramTypes(), ", "))
			if sg := cmp.Or(typeAliases[s], suggest(s, paramTypes())); sg != "" {
				msg = fmt.Sprintf("unknown parameter type %q; did you mean %q?", s, sg)
			}
			l.errorf(t, join(path, "type"), "%s", msg)
		}
		p.typ = s
	}
	if d, ok := byKey["description"]; ok {
		p.description, _ = l.scalar(d, join(path, "description"))
	}
	if r, ok := byKey["required"]; ok {
		p.required, _ = l.boolValue(r, join(path, "required"))
	}
	if len(l.diags) > before || p.typ == "" {
		return nil // without a valid type nothing else can be checked
	}
	l.parseParamRules(p, byKey, path)
	return p
}

// parseParamRules compiles pattern, min, max, enum and default, each checked
// against the parameter's type.
func (l *loader) parseParamRules(p *param, byKey map[string]*yaml.Node, path string) {
	if n, ok := byKey["pattern"]; ok {
		if p.typ != "string" {
			l.errorf(n, join(path, "pattern"), "pattern applies only to type string, not %s", p.typ)
		} else if s, ok := l.scalar(n, join(path, "pattern")); ok {
			if _, err := regexp.Compile(s); err != nil {
				l.errorf(n, join(path, "pattern"), "invalid pattern: %v", strings.TrimPrefix(err.Error(), "error parsing regexp: "))
			} else {
				p.pattern, p.patternSrc = regexp.MustCompile(`^(?:`+s+`)$`), s
			}
		}
	}
	for _, key := range []string{"min", "max"} {
		n, ok := byKey[key]
		if !ok {
			continue
		}
		if p.typ == "boolean" {
			l.errorf(n, join(path, key), "%s does not apply to type boolean", key)
			continue
		}
		v, err := numberNode(n)
		if err != nil {
			l.errorf(n, join(path, key), "%v", err)
			continue
		}
		if key == "min" {
			p.min = &v
		} else {
			p.max = &v
		}
	}
	if p.min != nil && p.max != nil && *p.min > *p.max {
		l.errorf(byKey["max"], join(path, "max"), "max (%v) is less than min (%v)", *p.max, *p.min)
	}
	if n, ok := byKey["enum"]; ok {
		l.parseEnum(p, n, join(path, "enum"))
	}
	if n, ok := byKey["default"]; ok {
		v, err := p.valueFromNode(n)
		if err == nil {
			v, err = p.check(v)
		}
		if err != nil {
			l.errorf(n, join(path, "default"), "invalid default: %v", err)
		} else {
			p.def, p.hasDef = v, true
		}
		if p.required {
			l.warnf(n, join(path, "default"), "a required parameter never uses its default")
		}
	}
}

func (l *loader) parseEnum(p *param, n *yaml.Node, path string) {
	switch p.typ {
	case "string", "number", "integer", "boolean":
	default:
		l.errorf(n, path, "enum applies only to string, number, integer and boolean parameters")
		return
	}
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		l.errorf(n, path, "must be a non-empty list of allowed values")
		return
	}
	for _, item := range n.Content {
		v, err := p.valueFromNode(resolve(item))
		if err != nil {
			l.errorf(item, path, "enum value: %v", err)
			continue
		}
		p.enum = append(p.enum, v)
	}
}

// numberNode decodes an int or float scalar as float64.
func numberNode(n *yaml.Node) (float64, error) {
	if n.Kind != yaml.ScalarNode || (n.Tag != "!!int" && n.Tag != "!!float") {
		return 0, fmt.Errorf("must be a number, got %s", describe(n))
	}
	var f float64
	if err := n.Decode(&f); err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("must be a finite number, got %s", n.Value)
	}
	return f, nil
}

// valueFromNode decodes a YAML value (a default or an enum entry) into the
// shape a JSON payload would have, checked against p's type.
func (p *param) valueFromNode(n *yaml.Node) (any, error) {
	switch p.typ {
	case "string":
		if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
			return nil, fmt.Errorf("must be a string, got %s (quote it)", describe(n))
		}
		return n.Value, nil
	case "number", "integer":
		f, err := numberNode(n)
		if err != nil {
			return nil, err
		}
		if p.typ == "integer" && (f != math.Trunc(f) || math.Abs(f) > maxExactInt) {
			return nil, fmt.Errorf("must be an integer, got %s", n.Value)
		}
		return f, nil
	case "boolean":
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
			return nil, fmt.Errorf("must be true or false, got %s", describe(n))
		}
		return n.Value == "true", nil
	}
	var v any
	if err := n.Decode(&v); err != nil {
		return nil, err
	}
	return jsonShape(v)
}

// jsonShape converts a value decoded by yaml.v3 into the shape encoding/json
// produces (float64 numbers, map[string]any, []any).
func jsonShape(v any) (any, error) {
	switch x := v.(type) {
	case nil, string, bool, float64:
		return x, nil
	case int:
		return float64(x), nil
	case int64:
		return float64(x), nil
	case uint64:
		return float64(x), nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			s, err := jsonShape(e)
			if err != nil {
				return nil, err
			}
			out[i] = s
		}
		return out, nil
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			s, err := jsonShape(e)
			if err != nil {
				return nil, err
			}
			out[k] = s
		}
		return out, nil
	}
	return nil, fmt.Errorf("value of type %T cannot be expressed in JSON", v)
}

// check validates one JSON-decoded value against the parameter and returns
// the value params.<name> holds (integers become int).
func (p *param) check(v any) (any, error) {
	v, size, err := p.checkType(v)
	if err != nil {
		return nil, err
	}
	if p.pattern != nil && !p.pattern.MatchString(v.(string)) {
		return nil, fmt.Errorf("parameter %q does not match pattern %s", p.name, p.patternSrc)
	}
	what := "must be"
	if p.typ != "number" && p.typ != "integer" {
		what = "length must be"
	}
	if p.min != nil && size < *p.min {
		return nil, fmt.Errorf("parameter %q %s >= %v", p.name, what, *p.min)
	}
	if p.max != nil && size > *p.max {
		return nil, fmt.Errorf("parameter %q %s <= %v", p.name, what, *p.max)
	}
	if len(p.enum) > 0 && !p.inEnum(v) {
		return nil, fmt.Errorf("parameter %q must be one of %s", p.name, p.enumText())
	}
	return v, nil
}

// checkType checks the JSON type and returns the converted value and its
// size for min/max: the value for numbers, characters for strings, items for
// arrays, keys for objects.
func (p *param) checkType(v any) (any, float64, error) {
	switch p.typ {
	case "string":
		if s, ok := v.(string); ok {
			return s, float64(utf8.RuneCountInString(s)), nil
		}
	case "number":
		if f, ok := v.(float64); ok {
			return f, f, nil
		}
		if n, ok := v.(json.Number); ok {
			return nil, 0, fmt.Errorf("parameter %q is the integer %s, beyond ±2^53: a number would not hold it exactly (declare the parameter integer)", p.name, n)
		}
	case "integer":
		return p.checkInteger(v)
	case "boolean":
		if b, ok := v.(bool); ok {
			return b, 0, nil
		}
	case "object":
		if m, ok := v.(map[string]any); ok {
			return m, float64(len(m)), nil
		}
	case "array":
		if a, ok := v.([]any); ok {
			return a, float64(len(a)), nil
		}
	}
	return nil, 0, fmt.Errorf("parameter %q must be %s %s, got %s", p.name, article(p.typ), p.typ, jsonTypeName(v))
}

// checkInteger accepts an integral float64 within ±2^53 (the decoder keeps
// every integer literal beyond that as json.Number) and a json.Number within
// int64, exactly; anything else is an error naming the parameter.
func (p *param) checkInteger(v any) (any, float64, error) {
	switch x := v.(type) {
	case float64:
		if x == math.Trunc(x) && math.Abs(x) <= maxExactInt {
			return int(x), x, nil
		}
	case json.Number:
		n, err := strconv.ParseInt(string(x), 10, 64)
		if err != nil {
			return nil, 0, fmt.Errorf("parameter %q must be an integer within int64 (±9223372036854775807), got %s", p.name, x)
		}
		return int(n), float64(n), nil
	}
	return nil, 0, fmt.Errorf("parameter %q must be an integer, got %s", p.name, jsonTypeName(v))
}

func (p *param) inEnum(v any) bool {
	for _, e := range p.enum {
		switch x := v.(type) {
		case int:
			if f, ok := e.(float64); ok && f == float64(x) {
				return true
			}
		default:
			if e == v {
				return true
			}
		}
	}
	return false
}

func (p *param) enumText() string {
	parts := make([]string, len(p.enum))
	for i, e := range p.enum {
		if s, ok := e.(string); ok {
			parts[i] = strconv.Quote(s)
		} else {
			parts[i] = fmt.Sprint(e)
		}
	}
	return strings.Join(parts, ", ")
}

func article(typ string) string {
	if typ == "integer" || typ == "object" || typ == "array" {
		return "an"
	}
	return "a"
}

// jsonTypeName names the JSON type of a decoded value.
func jsonTypeName(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case float64:
		if x == math.Trunc(x) {
			return "the number " + strconv.FormatFloat(x, 'f', -1, 64)
		}
		return "a number"
	case json.Number:
		return "the number " + string(x)
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	}
	return fmt.Sprintf("%T", v)
}
