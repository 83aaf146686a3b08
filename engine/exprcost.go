package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/builtin"
	"github.com/expr-lang/expr/vm/runtime"
)

// Bounds of one expression evaluation (docs/handlers.md, "Expression
// bounds"). expr's own budget counts array and map elements (1,000,000
// per evaluation: ranges, literals, map/filter results, sortBy); it does
// not count bytes, so a few string functions over a 120 KB payload could
// allocate gigabytes (issue 19). The meter below adds:
//   - exprBytesBudget: the strings and arrays an evaluation produces, in
//     bytes (a string its length, an array or map 16 bytes an element). It
//     is checked before the work for the functions whose output can outgrow
//     their inputs (replace, repeat, join, string, toJSON, concat, flatten)
//     and right after it for the others (+ on strings, trim*, upper, lower,
//     split*, fromJSON, to/fromBase64, keys, values, toPairs, fromPairs,
//     sort, sortBy, reverse, uniq, take, map, filter, groupBy), whose output
//     is at most a small multiple of an input already paid for.
//   - exprTimeLimit: wall time. Every iteration of every loop (the closures
//     of map, filter, all, any, count, sum, reduce, ...; expr has no other
//     loop) and every metered function checks it, so the evaluation stops
//     within one uninterruptible step (one sort or regexp match over inputs
//     the budgets bound) of the limit, in the goroutine of the call: when
//     the 500 is replied nothing keeps running.
const (
	exprBytesBudget = 4 << 20
	exprTimeLimit   = time.Second
)

// meterKey holds the evaluation's *meter in the environment map; no
// expression can name it.
const meterKey = "\x00meter"

// envIdent is the name expressions read their whole environment by.
const envIdent = "$env"

// Errors that stop an evaluation at its bounds.
var (
	errBytesBudget = fmt.Errorf("expression stopped: it went over its budget of %d MiB of produced strings and arrays", exprBytesBudget>>20)
	errTimeLimit   = fmt.Errorf("expression stopped: it ran past its time limit of %s", exprTimeLimit)
)

// meter is the account of one evaluation.
type meter struct {
	bytes    int
	now      func() time.Time
	deadline time.Time
	ticks    uint
}

// newMeter starts an evaluation's account on clock (nil: time.Now).
func newMeter(clock func() time.Time) *meter {
	if clock == nil {
		clock = time.Now
	}
	return &meter{now: clock, deadline: clock().Add(exprTimeLimit)}
}

// charge books n produced bytes; it fails past the budget or the deadline.
func (m *meter) charge(n int) error {
	if n > exprBytesBudget || m.bytes+n > exprBytesBudget {
		m.bytes = exprBytesBudget + 1
		return errBytesBudget
	}
	m.bytes += n
	return m.clock()
}

// tick is one loop iteration: it reads the clock every 64 of them.
func (m *meter) tick() error {
	m.ticks++
	if m.ticks%64 == 0 {
		return m.clock()
	}
	return nil
}

func (m *meter) clock() error {
	if m.now().After(m.deadline) {
		return errTimeLimit
	}
	return nil
}

// meterOf returns the meter the evaluator put in env. Without one (never
// in a call) each operation is still bounded on its own.
func meterOf(env any) *meter {
	if m, ok := env.(map[string]any); ok {
		if mt, ok := m[meterKey].(*meter); ok {
			return mt
		}
	}
	return newMeter(nil)
}

// valueCost is what a produced value is charged: a string its bytes, an
// array or map 16 bytes an element (the elements themselves are shared).
func valueCost(v any) int {
	switch x := v.(type) {
	case string:
		return len(x)
	case []any:
		return 16 * len(x)
	case map[string]any:
		return 16 * len(x)
	case nil, bool, int, float64:
		return 0
	}
	switch rv := reflect.ValueOf(v); rv.Kind() {
	case reflect.Slice, reflect.Map, reflect.String:
		return 16 * rv.Len()
	}
	return 0
}

// Names of the metering functions; they cannot be written in expressions.
const (
	fnTick   = "\x00tick"
	fnCharge = "\x00charge"
	fnPrefix = "\x00" // + builtin name: its pre-checked replacement
)

// chargedBuiltins are paid for right after they run.
var chargedBuiltins = map[string]bool{
	"trim": true, "trimPrefix": true, "trimSuffix": true, "upper": true, "lower": true,
	"split": true, "splitAfter": true, "toBase64": true, "fromBase64": true,
	"keys": true, "values": true, "toPairs": true, "fromPairs": true, "sort": true,
	"sortBy": true, "reverse": true, "uniq": true, "take": true, "map": true,
	"filter": true, "groupBy": true,
}

// costPatcher rewrites a checked expression tree so that its evaluation is
// metered: loop bodies tick, pre-checked builtins become calls of their
// replacements, and producing nodes are charged. Types are kept: a tick is
// `tick; body`, a charge `let v = node; charge(v); v`.
type costPatcher struct{ vars int }

func (p *costPatcher) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.PredicateNode:
		n.Node = &ast.SequenceNode{Nodes: []ast.Node{envCall(fnTick), n.Node}}
	case *ast.BuiltinNode:
		if _, ok := meteredBuiltins[n.Name]; ok {
			args := append([]ast.Node{&ast.IdentifierNode{Value: envIdent}}, n.Arguments...)
			ast.Patch(node, &ast.CallNode{Callee: &ast.IdentifierNode{Value: fnPrefix + n.Name}, Arguments: args})
		} else if chargedBuiltins[n.Name] {
			p.charge(node)
		}
	case *ast.BinaryNode:
		if n.Operator == "+" && !numeric(n.Type()) {
			p.charge(node)
		}
	}
}

func (p *costPatcher) charge(node *ast.Node) {
	p.vars++
	name := fmt.Sprintf("\x00v%d", p.vars)
	orig := *node
	*node = &ast.VariableDeclaratorNode{Name: name, Value: orig, Expr: &ast.SequenceNode{Nodes: []ast.Node{
		envCall(fnCharge, &ast.IdentifierNode{Value: name}),
		&ast.IdentifierNode{Value: name},
	}}}
}

func envCall(fn string, args ...ast.Node) ast.Node {
	return &ast.CallNode{Callee: &ast.IdentifierNode{Value: fn}, Arguments: append([]ast.Node{&ast.IdentifierNode{Value: envIdent}}, args...)}
}

func numeric(t reflect.Type) bool {
	if t == nil {
		return false
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int64, reflect.Float64, reflect.Int32, reflect.Uint, reflect.Uint64:
		return true
	}
	return false
}

// meteredBuiltin is a pre-checked replacement of an expr builtin: fn gets
// the evaluation's meter and the builtin's arguments; types are the
// builtin's signatures with the environment first.
type meteredBuiltin struct {
	fn    func(m *meter, args []any) (any, error)
	types []any
}

var meteredBuiltins = map[string]meteredBuiltin{
	"replace": {meteredReplace, []any{
		new(func(any, string, string, string) string), new(func(any, string, string, string, int) string)}},
	"repeat": {meteredRepeat, []any{new(func(any, string, int) string)}},
	"join": {meteredJoin, []any{
		new(func(any, []string, string) string), new(func(any, []string) string),
		new(func(any, []any, string) string), new(func(any, []any) string)}},
	"string":   {meteredString, []any{new(func(any, any) string)}},
	"toJSON":   {meteredToJSON, []any{new(func(any, any) string)}},
	"fromJSON": {meteredFromJSON, []any{new(func(any, string) any)}},
	"concat":   {meteredConcat, []any{new(func(any, ...any) []any)}},
	"flatten":  {meteredFlatten, []any{new(func(any, any) []any)}},
}

// costOptions are the expr options that meter an expression: the patcher
// and the functions it calls.
func costOptions() []expr.Option {
	opts := []expr.Option{
		expr.Patch(&costPatcher{}),
		expr.Function(fnTick, func(a ...any) (any, error) { return true, meterOf(a[0]).tick() }, new(func(any) bool)),
		expr.Function(fnCharge, func(a ...any) (any, error) { return true, meterOf(a[0]).charge(valueCost(a[1])) }, new(func(any, any) bool)),
	}
	for name, mb := range meteredBuiltins {
		fn := mb.fn
		opts = append(opts, expr.Function(fnPrefix+name, func(a ...any) (any, error) {
			m := meterOf(a[0])
			if err := m.clock(); err != nil {
				return nil, err
			}
			return fn(m, a[1:])
		}, mb.types...))
	}
	return opts
}

func meteredReplace(m *meter, a []any) (any, error) {
	s, old, repl := a[0].(string), a[1].(string), a[2].(string)
	n := -1
	if len(a) == 4 {
		n = runtime.ToInt(a[3])
	}
	count := strings.Count(s, old)
	if n >= 0 && n < count {
		count = n
	}
	if err := m.charge(len(s) + count*len(repl)); err != nil {
		return nil, err
	}
	return strings.Replace(s, old, repl, n), nil
}

func meteredRepeat(m *meter, a []any) (any, error) {
	s, n := a[0].(string), runtime.ToInt(a[1])
	if n < 0 {
		return nil, fmt.Errorf("invalid argument for repeat (expected positive integer, got %d)", n)
	}
	if len(s) > 0 && n > exprBytesBudget/len(s) {
		return nil, m.charge(exprBytesBudget + 1)
	}
	if err := m.charge(len(s) * n); err != nil {
		return nil, err
	}
	return strings.Repeat(s, n), nil
}

func meteredJoin(m *meter, a []any) (any, error) {
	glue := ""
	if len(a) == 2 {
		glue = a[1].(string)
	}
	var parts []string
	switch x := a[0].(type) {
	case []string:
		parts = x
	case []any:
		parts = make([]string, len(x))
		for i, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("invalid argument for join: element %d is %T, not a string", i, e)
			}
			parts[i] = s
		}
	default:
		return nil, fmt.Errorf("invalid argument for join (type %T)", a[0])
	}
	size := len(glue) * max(len(parts)-1, 0)
	for _, s := range parts {
		if size += len(s); size > exprBytesBudget {
			break
		}
	}
	if err := m.charge(size); err != nil {
		return nil, err
	}
	return strings.Join(parts, glue), nil
}

// meteredString is expr's string(): fmt's %v, after checking the size of
// the text through its JSON encoding (about the same size).
func meteredString(m *meter, a []any) (any, error) {
	if s, ok := a[0].(string); ok {
		return s, nil
	}
	if err := chargeEncoded(m, a[0], 0); err != nil {
		return nil, err
	}
	return builtin.String(a[0]), nil
}

// meteredToJSON is expr's toJSON (indented by two spaces).
func meteredToJSON(m *meter, a []any) (any, error) {
	if err := chargeEncoded(m, a[0], 2); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(a[0], "", "  ")
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

// chargeEncoded charges the size of v's JSON encoding, indent bytes a
// nesting level a line, computed without building it.
func chargeEncoded(m *meter, v any, indent int) error {
	left := exprBytesBudget - m.bytes
	n, err := encodedSize(v, indent, 0, left)
	if err != nil {
		return err
	}
	return m.charge(n)
}

// encodedSize is an upper bound of the encoded size of v, stopping once it
// passes limit.
func encodedSize(v any, indent, depth, limit int) (int, error) {
	if depth > maxEncodeDepth {
		return 0, errTooDeep
	}
	line := 2 + indent*(depth+1)
	switch x := v.(type) {
	case string:
		return 2 + 6*len(x), nil
	case []any:
		n := 2 + indent*depth
		for _, e := range x {
			s, err := encodedSize(e, indent, depth+1, limit-n)
			if err != nil {
				return 0, err
			}
			if n += s + line; n > limit {
				return n, nil
			}
		}
		return n, nil
	case map[string]any:
		n := 2 + indent*depth
		for k, e := range x {
			s, err := encodedSize(e, indent, depth+1, limit-n)
			if err != nil {
				return 0, err
			}
			if n += s + 6*len(k) + 4 + line; n > limit {
				return n, nil
			}
		}
		return n, nil
	}
	return 32 + valueCost(v)*4, nil
}

// meteredFromJSON is fromJSON with the payload's number contract: big
// integers stay exact (json.Number), invalid text is an error.
func meteredFromJSON(m *meter, a []any) (any, error) {
	s := a[0].(string)
	if err := m.charge(2 * len(s)); err != nil {
		return nil, err
	}
	v, err := decodeJSON([]byte(s))
	if err != nil {
		if pe, ok := errors.AsType[*payloadError](err); ok {
			return nil, fmt.Errorf("fromJSON: %s", pe.text("the text"))
		}
		var into any
		if uerr := json.Unmarshal([]byte(s), &into); uerr != nil {
			return nil, fmt.Errorf("fromJSON: %w", uerr)
		}
		return nil, fmt.Errorf("fromJSON: %w", err)
	}
	return v, nil
}

func meteredConcat(m *meter, a []any) (any, error) {
	total := 0
	for _, x := range a {
		rv := reflect.ValueOf(x)
		if rv.Kind() != reflect.Slice && rv.Kind() != reflect.Array {
			return nil, fmt.Errorf("cannot concat %T", x)
		}
		total += rv.Len()
	}
	if err := m.charge(16 * total); err != nil {
		return nil, err
	}
	out := make([]any, 0, total)
	for _, x := range a {
		rv := reflect.ValueOf(x)
		for i := range rv.Len() {
			out = append(out, rv.Index(i).Interface())
		}
	}
	return out, nil
}

func meteredFlatten(m *meter, a []any) (any, error) {
	rv := reflect.ValueOf(a[0])
	if rv.Kind() != reflect.Slice && rv.Kind() != reflect.Array {
		return nil, fmt.Errorf("cannot flatten %T", a[0])
	}
	var out []any
	var walk func(v reflect.Value, depth int) error
	walk = func(v reflect.Value, depth int) error {
		if depth > maxEncodeDepth {
			return errTooDeep
		}
		for i := range v.Len() {
			e := v.Index(i)
			for e.Kind() == reflect.Interface && !e.IsNil() {
				e = e.Elem()
			}
			if e.Kind() == reflect.Slice || e.Kind() == reflect.Array {
				if err := walk(e, depth+1); err != nil {
					return err
				}
				continue
			}
			if err := m.charge(16); err != nil {
				return err
			}
			out = append(out, e.Interface())
		}
		return nil
	}
	if err := walk(rv, 0); err != nil {
		return nil, err
	}
	if out == nil {
		out = []any{}
	}
	return out, nil
}
