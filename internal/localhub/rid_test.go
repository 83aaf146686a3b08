package localhub

import (
	"regexp"
	"testing"
)

// TestNextRID: request ids count up from 1 behind an 8-hex-digit epoch
// drawn at random per hub, so that a restarted hub does not hand out the
// ids of the previous one; none has a character a topic cannot carry.
func TestNextRID(t *testing.T) {
	form := regexp.MustCompile(`^[89a-f][0-9a-f]{7}\.([1-9][0-9]*)$`)
	var a, b Hub
	first, second, other := a.nextRID(), a.nextRID(), b.nextRID()
	for _, rid := range []string{first, second, other} {
		if !form.MatchString(rid) {
			t.Errorf("rid %q, want EPOCH.N (8 hex digits, a decimal counter)", rid)
		}
	}
	if epoch := first[:9]; second != epoch+"2" || first != epoch+"1" {
		t.Errorf("rids %q, %q: want %s1, %s2", first, second, epoch, epoch)
	}
	if other[:8] == first[:8] { // one chance in 2^31
		t.Errorf("two hubs share the epoch %s", first[:8])
	}
}
