package engine

import (
	"encoding/json"
	"testing"
)

// TestReleaseOnlyReturnsTheCurrentLease: Release returns a reply's buffer
// once; a second Release, or a stale copy released after the buffer was
// leased again, does nothing.
func TestReleaseOnlyReturnsTheCurrentLease(t *testing.T) {
	var p replyBuffers
	rep := p.valueReply(200, map[string]any{"a": "b"}, "test")
	if rep.lease == nil || string(rep.Payload) != `{"a":"b"}` {
		t.Fatalf("reply %s without a lease", rep.Payload)
	}
	rb, g := rep.lease, rep.gen
	stale := rep
	rep.Release()
	if got := rb.gen.Load(); got != g+1 {
		t.Fatalf("after Release the generation is %d, want %d", got, g+1)
	}
	rep.Release()
	stale.Release()
	if got := rb.gen.Load(); got != g+1 {
		t.Fatalf("a second Release moved the generation to %d", got)
	}
	// The buffer leased again: the stale copy still must not return it.
	again := Reply{Payload: rb.b, lease: rb, gen: rb.gen.Load()}
	stale.Release()
	if got := rb.gen.Load(); got != again.gen {
		t.Fatalf("a stale Release returned a buffer leased again (generation %d, lease at %d)", got, again.gen)
	}
	again.Release()
	if got := rb.gen.Load(); got != again.gen+1 {
		t.Fatalf("the current lease's Release did not return it (generation %d)", got)
	}
}

// TestRepliesWithoutLease: replies that do not live in a pooled buffer
// (errors, raw command output, built-ins) have nothing to release.
func TestRepliesWithoutLease(t *testing.T) {
	var p replyBuffers
	for name, rep := range map[string]Reply{
		"error": errorReply(400, "bad"),
		"raw":   p.valueReply(200, json.RawMessage(`{}`), "test"),
		"nan":   p.valueReply(200, map[string]any{"x": func() {}}, "test"),
	} {
		if rep.lease != nil {
			t.Errorf("%s reply %s holds a lease", name, rep.Payload)
		}
		rep.Release() // must not panic
	}
}
