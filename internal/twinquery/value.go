package twinquery

import (
	"encoding/json"
	"math"
	"math/big"
	"strings"
)

// kind is the type of a value in the query language.
type kind uint8

const (
	kindUndefined kind = iota // a missing path, or a result that has none
	kindNull
	kindBool
	kindNumber
	kindString
	kindComplex // an object or array: never compared
)

// numPrec is the precision numbers are compared at, in bits: integers up
// to 2^200 and every float64 are exact.
const numPrec = 200

// value is a constant, a document value or an operator's result. The zero
// value is undefined.
type value struct {
	kind kind
	b    bool
	s    string
	n    *big.Float // read-only once built
}

func boolValue(b bool) value { return value{kind: kindBool, b: b} }

// isTrue reports whether v is the Boolean true, the only value that matches.
func (v value) isTrue() bool { return v.kind == kindBool && v.b }

// jsonValue converts a decoded JSON value. Numbers may be json.Number (as
// UseNumber gives) or Go numeric types; a number that cannot be read, a
// NaN, or an unknown Go type is undefined.
func jsonValue(x any) value {
	switch x := x.(type) {
	case nil:
		return value{kind: kindNull}
	case bool:
		return boolValue(x)
	case string:
		return value{kind: kindString, s: x}
	case json.Number:
		return decimalValue(string(x))
	case map[string]any, []any:
		return value{kind: kindComplex}
	}
	return goNumberValue(x)
}

// goNumberValue converts a Go number; anything else is undefined.
func goNumberValue(x any) value {
	f := new(big.Float).SetPrec(numPrec)
	switch x := x.(type) {
	case float64:
		if math.IsNaN(x) {
			return value{}
		}
		f.SetFloat64(x)
	case float32:
		return goNumberValue(float64(x))
	case int:
		f.SetInt64(int64(x))
	case int64:
		f.SetInt64(x)
	case int32:
		f.SetInt64(int64(x))
	case uint64:
		f.SetUint64(x)
	case uint:
		f.SetUint64(uint64(x))
	default:
		return value{}
	}
	return value{kind: kindNumber, n: f}
}

// decimalValue parses a decimal number (no hex, no underscores); it is
// undefined when the text is not one or its exponent overflows.
func decimalValue(s string) value {
	if strings.ContainsRune(s, '_') {
		return value{}
	}
	f, _, err := big.ParseFloat(s, 10, numPrec, big.ToNearestEven)
	if err != nil {
		return value{}
	}
	return value{kind: kindNumber, n: f}
}

// hexValueOf parses the digits of a 0x hex integer (without the prefix).
func hexValueOf(digits string) value {
	i, ok := new(big.Int).SetString(digits, 16)
	if !ok {
		return value{}
	}
	return value{kind: kindNumber, n: new(big.Float).SetPrec(numPrec).SetInt(i)}
}

// negate returns -v for a number.
func (v value) negate() value {
	return value{kind: kindNumber, n: new(big.Float).Neg(v.n)}
}

// cmpOp is a comparison operator.
type cmpOp uint8

const (
	opEq cmpOp = iota + 1
	opNe
	opLt
	opGt
	opLe
	opGe
)

// cmpOpOf maps an operator token's text to its cmpOp.
func cmpOpOf(text string) (cmpOp, bool) {
	switch text {
	case "=":
		return opEq, true
	case "!=", "<>":
		return opNe, true
	case "<":
		return opLt, true
	case ">":
		return opGt, true
	case "<=":
		return opLe, true
	case ">=":
		return opGe, true
	}
	return 0, false
}

// holds reports whether a three-way comparison result c satisfies op.
func (op cmpOp) holds(c int) bool {
	switch op {
	case opEq:
		return c == 0
	case opNe:
		return c != 0
	case opLt:
		return c < 0
	case opGt:
		return c > 0
	case opLe:
		return c <= 0
	}
	return c >= 0
}

// compare applies op to a and b. Only primitives of the same kind compare:
// numbers numerically, strings by bytes, booleans and nulls with = and !=
// only (null = null is true). Anything else is undefined.
func compare(op cmpOp, a, b value) value {
	if a.kind != b.kind {
		return value{}
	}
	switch a.kind {
	case kindNumber:
		return boolValue(op.holds(a.n.Cmp(b.n)))
	case kindString:
		return boolValue(op.holds(strings.Compare(a.s, b.s)))
	case kindBool:
		if op == opEq || op == opNe {
			return boolValue((a.b == b.b) == (op == opEq))
		}
	case kindNull:
		if op == opEq || op == opNe {
			return boolValue(op == opEq)
		}
	}
	return value{}
}
