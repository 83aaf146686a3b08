package testkit

import (
	"context"
	"sync"
	"testing"
	"time"
)

// stopWithin bounds the wait for a Background function after its context
// is cancelled: a hang guard, the function returns in milliseconds.
const stopWithin = 30 * time.Second

// Background runs run in a goroutine with a context that stop cancels. stop
// then waits for run to return and fails t (naming what) if it returned an
// error or did not return within 30 s. stop is idempotent and is also
// registered as a cleanup, so run never outlives the test.
func Background(t testing.TB, what string, run func(ctx context.Context) error) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("%s: %v", what, err)
				}
			case <-time.After(stopWithin):
				t.Errorf("%s did not return within %s of cancellation", what, stopWithin)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}
