package iothub

import (
	"encoding/hex"
	"regexp"
	"strings"
	"testing"
)

// canonicalUUID is the 8-4-4-4-12 lowercase hex form.
var canonicalUUID = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// TestNewRequestID: every id is a canonical RFC 4122 version-4 UUID (version
// nibble 4, variant bits 10) and no two of many samples are equal.
func TestNewRequestID(t *testing.T) {
	const samples = 10000
	seen := make(map[string]bool, samples)
	for range samples {
		id := NewRequestID()
		if !canonicalUUID.MatchString(id) {
			t.Fatalf("id %q is not a canonical lowercase UUID", id)
		}
		b, err := hex.DecodeString(strings.ReplaceAll(id, "-", ""))
		if err != nil || len(b) != 16 {
			t.Fatalf("id %q: decode: %v (%d bytes)", id, err, len(b))
		}
		if v := b[6] >> 4; v != 4 {
			t.Fatalf("id %q: version %d, want 4", id, v)
		}
		if v := b[8] >> 6; v != 0b10 {
			t.Fatalf("id %q: variant bits %02b, want 10", id, v)
		}
		if seen[id] {
			t.Fatalf("id %q repeated within %d samples", id, len(seen))
		}
		seen[id] = true
	}
}
