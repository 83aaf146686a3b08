package engine

import (
	"encoding/json"
	"time"
)

// Descriptions of the built-in methods, as the catalog shows them.
const (
	pingDescription    = `Built-in: liveness check; replies {"pong":true,"time":RFC 3339 time}`
	catalogDescription = "Built-in: every method with its description and params schema"
)

// addBuiltins adds the enabled built-in methods whose names the file does
// not use itself (a method of the file overrides a built-in).
func (l *loader) addBuiltins(s *Set, b builtinNames) {
	add := func(name, desc string, fn func(*Set) Reply) {
		if name == "" {
			return
		}
		if m, taken := s.methods[name]; taken {
			if b.explicit[name] {
				l.warnf(nil, join("methods", name), "method %q replaces the built-in of the same name set in builtins", m.name)
			}
			return
		}
		s.methods[name] = &method{name: name, description: desc, builtin: fn, concurrency: s.defaults.Concurrency}
	}
	add(b.names["ping"], pingDescription, (*Set).ping)
	add(b.names["catalog"], catalogDescription, (*Set).catalogReply)
	l.addTaskBuiltins(s, b)
}

// ping is the built-in liveness reply.
func (s *Set) ping() Reply {
	b := make([]byte, 0, 64)
	b = append(b, `{"pong":true,"time":"`...)
	b = s.now().AppendFormat(b, time.RFC3339Nano)
	return Reply{Status: 200, Payload: append(b, `"}`...)}
}

func (s *Set) catalogReply() Reply { return s.catalog }

// catalogEntry is one method as the catalog publishes it.
type catalogEntry struct {
	Name        string                 `json:"name"`
	Description string                 `json:"description,omitempty"`
	Params      map[string]paramSchema `json:"params"`
}

// paramSchema is a parameter's published schema.
type paramSchema struct {
	Type        string   `json:"type"`
	Description string   `json:"description,omitempty"`
	Required    bool     `json:"required,omitempty"`
	Default     any      `json:"default,omitempty"`
	Enum        []any    `json:"enum,omitempty"`
	Pattern     string   `json:"pattern,omitempty"`
	Min         *float64 `json:"min,omitempty"`
	Max         *float64 `json:"max,omitempty"`
}

// buildCatalog renders the catalog reply once, at load.
func (s *Set) buildCatalog() Reply {
	entries := make([]catalogEntry, 0, len(s.names))
	for _, name := range s.names {
		m := s.methods[name]
		e := catalogEntry{Name: name, Description: m.description, Params: map[string]paramSchema{}}
		for _, p := range m.params {
			e.Params[p.name] = paramSchema{Type: p.typ, Description: p.description, Required: p.required,
				Default: p.def, Enum: p.enum, Pattern: p.patternSrc, Min: p.min, Max: p.max}
		}
		entries = append(entries, e)
	}
	body := struct {
		Methods  []catalogEntry `json:"methods"`
		Digest   string         `json:"digest"`
		LoadedAt time.Time      `json:"loadedAt"`
	}{entries, s.digest, s.loadedAt}
	b, err := json.Marshal(body)
	if err != nil {
		return errorReply(500, "catalog: "+err.Error())
	}
	if len(b) > MaxReplyBytes {
		return errorReply(500, "catalog: too many methods to fit a 128 KB reply")
	}
	return Reply{Status: 200, Payload: b}
}
