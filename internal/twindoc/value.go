package twindoc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"unicode/utf8"
)

// kind is the JSON type of a value.
type kind uint8

const (
	kindNull kind = iota
	kindBool
	kindNumber
	kindString
	kindObject
	kindArray
)

// value is a parsed JSON value that keeps what generic decoding loses: the
// order of object members and the exact text of numbers. Values are never
// modified once parsed, so stored twins may share them.
type value struct {
	kind kind
	text string   // "true"/"false", the number's JSON text, or the string
	keys []string // object member names in document order
	vals []*value // object member values (parallel to keys) or array elements
}

// member returns the value of the member named key of an object, or nil.
func (v *value) member(key string) *value {
	for i, k := range v.keys {
		if k == key {
			return v.vals[i]
		}
	}
	return nil
}

// parseJSON parses b, which must hold exactly one JSON value in valid UTF-8.
// A member name repeated within one object is an error.
func parseJSON(b []byte) (*value, error) {
	if !utf8.Valid(b) {
		return nil, errors.New("not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	v, err := parseValue(dec)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON value")
	}
	return v, nil
}

// parseValue reads the next complete value from dec.
func parseValue(dec *json.Decoder) (*value, error) {
	tok, err := dec.Token()
	if err == io.EOF {
		return nil, io.ErrUnexpectedEOF
	}
	if err != nil {
		return nil, err
	}
	switch tok := tok.(type) {
	case nil:
		return &value{kind: kindNull}, nil
	case bool:
		if tok {
			return &value{kind: kindBool, text: "true"}, nil
		}
		return &value{kind: kindBool, text: "false"}, nil
	case json.Number:
		return &value{kind: kindNumber, text: string(tok)}, nil
	case string:
		return &value{kind: kindString, text: tok}, nil
	case json.Delim:
		if tok == '{' {
			return parseObject(dec)
		}
		if tok == '[' {
			return parseArray(dec)
		}
	}
	return nil, errors.New("unexpected token")
}

// parseObject reads the members of an object whose '{' was read.
func parseObject(dec *json.Decoder) (*value, error) {
	v := &value{kind: kindObject}
	seen := make(map[string]bool)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, ok := tok.(string)
		if !ok {
			return nil, errors.New("unexpected token")
		}
		if seen[key] {
			return nil, fmt.Errorf("duplicate member %s", segment(key))
		}
		seen[key] = true
		val, err := parseValue(dec)
		if err != nil {
			return nil, err
		}
		v.keys, v.vals = append(v.keys, key), append(v.vals, val)
	}
	return v, closing(dec)
}

// parseArray reads the elements of an array whose '[' was read.
func parseArray(dec *json.Decoder) (*value, error) {
	v := &value{kind: kindArray, vals: []*value{}}
	for dec.More() {
		val, err := parseValue(dec)
		if err != nil {
			return nil, err
		}
		v.vals = append(v.vals, val)
	}
	return v, closing(dec)
}

// closing reads the '}' or ']' that ends an object or array.
func closing(dec *json.Decoder) error {
	tok, err := dec.Token()
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || (d != '}' && d != ']') {
		return errors.New("unexpected token")
	}
	return nil
}

// withoutNulls returns v with every null member of every object removed,
// recursively; arrays, and the nulls they hold, are kept as they are.
func withoutNulls(v *value) *value {
	if v.kind != kindObject {
		return v
	}
	out := &value{kind: kindObject}
	for i, k := range v.keys {
		if v.vals[i].kind != kindNull {
			out.keys = append(out.keys, k)
			out.vals = append(out.vals, withoutNulls(v.vals[i]))
		}
	}
	return out
}

// without returns the object v minus its members named in drop.
func without(v *value, drop ...string) *value {
	out := &value{kind: kindObject}
	for i, k := range v.keys {
		if !slices.Contains(drop, k) {
			out.keys = append(out.keys, k)
			out.vals = append(out.vals, v.vals[i])
		}
	}
	return out
}
