package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
)

// maxEncodeDepth bounds nesting when encoding expression results.
const maxEncodeDepth = 1000

// maxEncodeBytes bounds what appendJSON builds: an expression result made
// of many references to one big string (map(1..N, s)) is small in memory
// but huge encoded; encoding stops past this size instead of building it.
const maxEncodeBytes = exprBytesBudget

var (
	errTooDeep  = errors.New("value nested too deeply")
	errTooLarge = fmt.Errorf("value encodes to more than the %d MiB budget", maxEncodeBytes>>20)
)

// appendJSON appends the JSON encoding of v. The JSON-shaped values that
// expressions produce (maps with string keys, slices, strings, numbers,
// booleans, nil, times) are encoded directly, with map keys sorted and
// without HTML escaping, exactly as encoding/json would order them; any
// other type goes through encoding/json.
func appendJSON(b []byte, v any, depth int) ([]byte, error) {
	if depth > maxEncodeDepth {
		return nil, errTooDeep
	}
	if len(b) > maxEncodeBytes {
		return nil, errTooLarge
	}
	switch x := v.(type) {
	case json.Number: // a payload integer beyond ±2^53, its digits as received
		return append(b, x...), nil
	case nil:
		return append(b, "null"...), nil
	case string:
		return appendJSONString(b, x), nil
	case bool:
		return strconv.AppendBool(b, x), nil
	case int:
		return strconv.AppendInt(b, int64(x), 10), nil
	case int64:
		return strconv.AppendInt(b, x, 10), nil
	case float64:
		return appendFloat(b, x)
	case json.RawMessage:
		return append(b, x...), nil
	case time.Time:
		if y := x.Year(); y < 0 || y > 9999 {
			break
		}
		b = append(b, '"')
		b = x.AppendFormat(b, time.RFC3339Nano)
		return append(b, '"'), nil
	case []any:
		b = append(b, '[')
		for i, e := range x {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = appendJSON(b, e, depth+1); err != nil {
				return nil, err
			}
		}
		return append(b, ']'), nil
	case map[string]any:
		return appendMap(b, x, depth)
	}
	enc, err := marshal(v)
	if err != nil {
		return nil, err
	}
	return append(b, enc...), nil
}

func appendMap(b []byte, m map[string]any, depth int) ([]byte, error) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k)
		b = append(b, ':')
		var err error
		if b, err = appendJSON(b, m[k], depth+1); err != nil {
			return nil, err
		}
	}
	return append(b, '}'), nil
}

// appendFloat formats f as encoding/json does; NaN and ±Inf are errors.
func appendFloat(b []byte, f float64) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, fmt.Errorf("json: unsupported value: %v", f)
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		n := len(b) // e-09 → e-9, as encoding/json
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, nil
}
