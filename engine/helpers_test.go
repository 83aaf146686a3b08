package engine

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// mustParse parses src as handlers.yaml in a fresh temporary directory.
func mustParse(t testing.TB, src string, opts ...Options) *Set {
	t.Helper()
	o := testOptions()
	if len(opts) > 0 {
		o = opts[0]
	}
	file := filepath.Join(t.TempDir(), "handlers.yaml")
	s, err := Parse(file, []byte(src), o)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return s
}

// call runs one call with a test deadline and checks the reply invariants
// every reply must keep.
func call(t testing.TB, s interface {
	Call(context.Context, Request) Reply
}, method, payload string) Reply {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep := s.Call(ctx, Request{Method: method, Payload: []byte(payload), RequestID: "7", DeviceID: "dev-1", ModuleID: "mod-1"})
	checkReply(t, rep)
	return rep
}

// checkReply fails when rep breaks the reply contract.
func checkReply(t testing.TB, rep Reply) {
	t.Helper()
	if !json.Valid(rep.Payload) {
		t.Fatalf("reply payload is not valid JSON: %q", rep.Payload)
	}
	if len(rep.Payload) > MaxReplyBytes {
		t.Fatalf("reply payload is %d bytes, over %d", len(rep.Payload), MaxReplyBytes)
	}
	if rep.Status < 100 || rep.Status > 599 {
		t.Fatalf("reply status %d out of range", rep.Status)
	}
}

// fileExists reports whether path exists.
func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// decode unmarshals a reply payload into a generic value.
func decode(t testing.TB, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode %q: %v", b, err)
	}
	return v
}

// compactJSON normalises JSON text for comparisons.
func compactJSON(t testing.TB, s string) string {
	t.Helper()
	b, err := json.Marshal(decode(t, []byte(s)))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}
