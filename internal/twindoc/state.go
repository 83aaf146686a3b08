package twindoc

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// stateFormat is the version of the state MarshalJSON writes:
//
//	{"format":1,"desiredVersion":N,"reportedVersion":M,"tagWrites":K,
//	 "tags":NODE,"desired":NODE,"reported":NODE}
//
// where NODE is {"t":"<RFC 3339 UTC, ns>","v":<$lastUpdatedVersion>,
// "m":{"<key>":NODE,…}} for an object or {"t":…,"v":…,"j":<value>} for a
// leaf; "t" is omitted for the zero time and "v" when 0.
const stateFormat = 1

// stateTimeLayout keeps every nanosecond.
const stateTimeLayout = time.RFC3339Nano

// marshalState renders the complete state of t.
func (t *Twin) marshalState() []byte {
	b := append(make([]byte, 0, 256), '{')
	b = appendIntField(b, "format", stateFormat)
	b = appendIntField(b, "desiredVersion", t.desiredVersion)
	b = appendIntField(b, "reportedVersion", t.reportedVersion)
	b = appendIntField(b, "tagWrites", t.tagWrites)
	b = appendState(appendField(b, "tags"), t.tags)
	b = appendState(appendField(b, "desired"), t.desired)
	b = appendState(appendField(b, "reported"), t.reported)
	return append(b, '}')
}

// appendState appends one NODE of the state format.
func appendState(b []byte, n *node) []byte {
	b = append(b, '{')
	if !n.meta.at.IsZero() {
		b = appendStringField(b, "t", n.meta.at.UTC().Format(stateTimeLayout))
	}
	if n.meta.version != 0 {
		b = appendIntField(b, "v", n.meta.version)
	}
	if n.members == nil {
		b = appendValue(appendField(b, "j"), n.leaf)
		return append(b, '}')
	}
	b = append(appendField(b, "m"), '{')
	for _, k := range sortedKeys(n) {
		b = appendState(appendField(b, k), n.members[k])
	}
	return append(b, '}', '}')
}

// unmarshalState parses a state written by marshalState, checking every
// key and value against the document rules again.
func unmarshalState(b []byte) (Twin, error) {
	v, err := parseJSON(b)
	if err != nil {
		return Twin{}, err
	}
	if err := onlyMembers(v, "format", "desiredVersion", "reportedVersion", "tagWrites", "tags", "desired", "reported"); err != nil {
		return Twin{}, err
	}
	if f, err := intMember(v, "format", stateFormat); err != nil || f != stateFormat {
		return Twin{}, fmt.Errorf("not a twin state of format %d", stateFormat)
	}
	var t Twin
	if t.desiredVersion, err = intMember(v, "desiredVersion", 1); err != nil {
		return Twin{}, err
	}
	if t.reportedVersion, err = intMember(v, "reportedVersion", 1); err != nil {
		return Twin{}, err
	}
	if t.tagWrites, err = intMember(v, "tagWrites", 0); err != nil {
		return Twin{}, err
	}
	sections := []struct {
		name string
		dst  **node
	}{{"tags", &t.tags}, {"properties.desired", &t.desired}, {"properties.reported", &t.reported}}
	for i, s := range sections {
		if *s.dst, err = stateSection(v.vals[i+4], s.name); err != nil {
			return Twin{}, err
		}
	}
	if t.tagWrites == 0 && len(t.tags.members) > 0 {
		return Twin{}, errors.New("tags hold members but were never written")
	}
	return t, nil
}

// onlyMembers requires v to be an object with exactly the members names,
// in that order.
func onlyMembers(v *value, names ...string) error {
	if v.kind != kindObject {
		return errors.New("not an object")
	}
	if len(v.keys) != len(names) {
		return fmt.Errorf("%d members, want %d", len(v.keys), len(names))
	}
	for i, k := range v.keys {
		if k != names[i] {
			return fmt.Errorf("member %d is %s, want %s", i, segment(k), names[i])
		}
	}
	return nil
}

// intMember returns the integer member name of v, which must be ≥ least.
func intMember(v *value, name string, least int64) (int64, error) {
	m := v.member(name)
	if m == nil || m.kind != kindNumber {
		return 0, fmt.Errorf("%s is not a number", name)
	}
	n, err := strconv.ParseInt(m.text, 10, 64)
	if err != nil || n < least {
		return 0, fmt.Errorf("%s is not an integer ≥ %d", name, least)
	}
	return n, nil
}

// stateSection restores a section root, which must be an object node.
func stateSection(v *value, section string) (*node, error) {
	n, err := stateNode(v, &path{name: section}, 0)
	if err != nil {
		return nil, err
	}
	if n.members == nil {
		return nil, fmt.Errorf("%s is not an object", section)
	}
	return n, nil
}

// stateNode restores a NODE found at p; level is the level it has if it
// is an object.
func stateNode(v *value, p *path, level int) (*node, error) {
	s, err := stateStamp(v, p)
	if err != nil {
		return nil, err
	}
	if j := v.member("j"); j != nil && v.member("m") == nil {
		if j.kind == kindNull || j.kind == kindObject {
			return nil, fmt.Errorf("%s: a leaf holds a null or an object", p)
		}
		if err := checkValue(j, p, level-1); err != nil {
			return nil, err
		}
		return newLeaf(j, s), nil
	}
	m := v.member("m")
	if m == nil || m.kind != kindObject || v.member("j") != nil {
		return nil, fmt.Errorf("%s: a node needs exactly one of m and j", p)
	}
	if level > MaxDepth {
		return nil, fmt.Errorf("%s: objects nested more than %d levels", p, MaxDepth)
	}
	members := make(map[string]*node, len(m.keys))
	for i, k := range m.keys {
		mp := p.member(k)
		if err := checkKey(k, mp); err != nil {
			return nil, err
		}
		if members[k], err = stateNode(m.vals[i], mp, level+1); err != nil {
			return nil, err
		}
	}
	return newObject(members, s), nil
}

// stateStamp reads the "t" and "v" members of a NODE; no other member
// than those and "m" or "j" is allowed.
func stateStamp(v *value, p *path) (stamp, error) {
	if v.kind != kindObject {
		return stamp{}, fmt.Errorf("%s: a node is not an object", p)
	}
	var s stamp
	for i, k := range v.keys {
		var err error
		switch m := v.vals[i]; k {
		case "t":
			s.at, err = parseStateTime(m)
		case "v":
			s.version, err = intMember(v, "v", 1)
		case "m", "j":
		default:
			err = fmt.Errorf("unknown member %s", segment(k))
		}
		if err != nil {
			return stamp{}, fmt.Errorf("%s: %w", p, err)
		}
	}
	return s, nil
}

// parseStateTime reads a "t" member.
func parseStateTime(m *value) (time.Time, error) {
	if m.kind != kindString {
		return time.Time{}, errors.New("t is not a string")
	}
	at, err := time.Parse(stateTimeLayout, m.text)
	if err != nil || at.IsZero() {
		return time.Time{}, errors.New("t is not a time")
	}
	return at.UTC(), nil
}
