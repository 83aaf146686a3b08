package twinquery

// Evaluation uses three-valued logic, as SQL and the IoT Hub (Cosmos DB)
// language do, with undefined as the third value:
//
//   - a path that is missing (or crosses a non-object) is undefined;
//   - a comparison with an undefined operand, between values of different
//     kinds, or involving an object or array is undefined — so both
//     `x = 1` and `x != 1` are undefined when x is missing or a string;
//   - NOT true is false, NOT false is true, NOT of anything else is
//     undefined (undefined propagates: NOT (x = 1) does not match a
//     document without x);
//   - AND is false if any operand is false, else true if all are true,
//     else undefined; OR is true if any operand is true, else false if all
//     are false, else undefined. A non-Boolean operand counts as undefined;
//   - IN / NIN are undefined for an undefined or non-primitive left side;
//     otherwise IN is whether it equals (as =) any element and NIN its
//     negation;
//   - IS_DEFINED(path) is true when the path exists, even with null, and
//     false otherwise (never undefined).
//
// A document matches only when the whole condition is the Boolean true.

// expr is a node of a condition's syntax tree. Nodes are immutable.
type expr interface {
	eval(doc map[string]any) value
}

// constExpr is a constant.
type constExpr struct{ v value }

func (e constExpr) eval(map[string]any) value { return e.v }

// pathExpr is an attribute path, already relative to the document's root.
type pathExpr struct{ segs []string }

func (e pathExpr) eval(doc map[string]any) value {
	x, ok := lookup(doc, e.segs)
	if !ok {
		return value{}
	}
	return jsonValue(x)
}

// lookup follows segs through nested objects; ok is false when a segment
// is missing or a non-object is crossed.
func lookup(doc map[string]any, segs []string) (any, bool) {
	var cur any = doc
	for _, s := range segs {
		m, isObj := cur.(map[string]any)
		if !isObj {
			return nil, false
		}
		if cur, isObj = m[s]; !isObj {
			return nil, false
		}
	}
	return cur, true
}

// definedExpr is IS_DEFINED(path).
type definedExpr struct{ path pathExpr }

func (e definedExpr) eval(doc map[string]any) value {
	_, ok := lookup(doc, e.path.segs)
	return boolValue(ok)
}

// cmpExpr is a comparison.
type cmpExpr struct {
	op   cmpOp
	l, r expr
}

func (e cmpExpr) eval(doc map[string]any) value {
	return compare(e.op, e.l.eval(doc), e.r.eval(doc))
}

// inExpr is `l IN [list]`, or `l NIN [list]` when negate.
type inExpr struct {
	l      expr
	list   []value
	negate bool
}

func (e inExpr) eval(doc map[string]any) value {
	v := e.l.eval(doc)
	if v.kind == kindUndefined || v.kind == kindComplex {
		return value{}
	}
	found := false
	for _, c := range e.list {
		if compare(opEq, v, c).isTrue() {
			found = true
			break
		}
	}
	return boolValue(found != e.negate)
}

// notExpr is NOT x.
type notExpr struct{ x expr }

func (e notExpr) eval(doc map[string]any) value {
	v := e.x.eval(doc)
	if v.kind != kindBool {
		return value{}
	}
	return boolValue(!v.b)
}

// logicExpr is terms joined by AND (and) or OR (!and); it has two or more
// terms.
type logicExpr struct {
	and   bool
	terms []expr
}

// eval returns the deciding value (false for AND, true for OR) as soon as
// a term has it; otherwise the other Boolean, or undefined when some term
// was not a Boolean.
func (e logicExpr) eval(doc map[string]any) value {
	decider := !e.and
	undefined := false
	for _, t := range e.terms {
		v := t.eval(doc)
		switch {
		case v.kind != kindBool:
			undefined = true
		case v.b == decider:
			return boolValue(decider)
		}
	}
	if undefined {
		return value{}
	}
	return boolValue(!decider)
}
