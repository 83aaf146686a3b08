package testkit

import (
	"testing"
	"time"
)

// pollEvery is how often Eventually looks at its condition.
const pollEvery = 10 * time.Millisecond

// Eventually waits until cond holds, looking every 10 ms, and fails t
// (naming what it waited for) if it does not hold within d. It is for
// conditions no event announces (a file appearing, a counter reaching a
// value); where a typed event exists, wait on that instead. The polling
// interval is not synchronisation: the test proceeds only once cond holds.
func Eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(pollEvery)
	}
}
