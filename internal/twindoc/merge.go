package twindoc

import (
	"maps"
	"time"
)

// stamp is the metadata a write leaves on every node it touches (§1.7).
type stamp struct {
	at      time.Time // UTC, no monotonic reading
	version int64     // the desired $version of the write; 0 outside desired
}

// newStamp is the stamp of a write at now.
func newStamp(now time.Time, version int64) stamp {
	return stamp{at: now.UTC(), version: version}
}

// node is one stored property: an object (members not nil, possibly
// empty) or a leaf (a string, number, boolean or array value). Nodes are
// never modified once built: a write builds new nodes along the paths it
// touches and shares every other node with the twin it started from, so
// a failed write leaves nothing behind.
type node struct {
	members map[string]*node // nil for a leaf
	leaf    *value           // nil for an object
	meta    stamp
	size    int // §1.7 size: of the leaf's value, or of the members
}

// newObject builds an object node over members, which it keeps.
func newObject(members map[string]*node, s stamp) *node {
	n := &node{members: members, meta: s}
	for k, m := range members {
		n.size += len(k) + m.size
	}
	return n
}

// newLeaf builds a leaf node for the non-null, non-object value v.
func newLeaf(v *value, s stamp) *node {
	return &node{leaf: v, meta: s, size: valueSize(v)}
}

// emptyObject is an object node without members.
func emptyObject(s stamp) *node {
	return newObject(map[string]*node{}, s)
}

// merge applies the object patch p to old (§1.3): a null member deletes,
// an object member merges recursively, any other value replaces. A nil or
// leaf old counts as an empty object, so merge(nil, p, s) builds p minus
// its nulls. Every node built, and so every ancestor of a change, gets s.
func merge(old *node, p *value, s stamp) *node {
	members := make(map[string]*node, len(p.keys))
	if old != nil && old.members != nil {
		members = maps.Clone(old.members)
	}
	for i, k := range p.keys {
		switch v := p.vals[i]; v.kind {
		case kindNull:
			delete(members, k)
		case kindObject:
			members[k] = merge(members[k], v, s)
		default:
			members[k] = newLeaf(v, s)
		}
	}
	return newObject(members, s)
}

// write is merge for a PATCH and a wholesale replacement for a PUT.
func write(old *node, p *value, replace bool, s stamp) *node {
	if replace {
		return merge(nil, p, s)
	}
	return merge(old, p, s)
}
