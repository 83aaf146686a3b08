package invoke

import (
	"sync"
	"testing"
	"time"

	"github.com/methodd/methodd/iothub"
)

// fakeClock is a settable clock, safe for concurrent use.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestTokenIsCachedAndRenewedAtEightyPercent(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	s := &tokenSource{resource: "hub.example:8443", key: testKey, keyName: "iothubowner", ttl: time.Hour, now: clock.Now}
	first, err := s.Token()
	if err != nil {
		t.Fatal(err)
	}
	sas, err := iothub.ParseSAS(first)
	if err != nil {
		t.Fatal(err)
	}
	if err := sas.Verify(testKey, clock.Now()); err != nil {
		t.Fatalf("token does not verify: %v", err)
	}
	if !sas.Expiry.Equal(clock.Now().Add(time.Hour)) {
		t.Errorf("expiry %v, want now+1h", sas.Expiry)
	}
	clock.Advance(47 * time.Minute)
	if again, _ := s.Token(); again != first {
		t.Errorf("token changed at 78%% of its TTL; want the cached one")
	}
	clock.Advance(2 * time.Minute)
	renewed, _ := s.Token()
	if renewed == first {
		t.Fatalf("token not renewed at 82%% of its TTL")
	}
	rs, _ := iothub.ParseSAS(renewed)
	if err := rs.Verify(testKey, clock.Now().Add(50*time.Minute)); err != nil {
		t.Errorf("renewed token invalid 50 min later: %v", err)
	}
}

func TestTokenConcurrentUse(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	s := &tokenSource{resource: "h", key: testKey, keyName: "p", ttl: time.Minute, now: clock.Now}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 100 {
				if _, err := s.Token(); err != nil {
					t.Error(err)
					return
				}
				if i == 0 {
					clock.Advance(time.Second)
				}
			}
		})
	}
	wg.Wait()
}

func TestRetryDelayBounds(t *testing.T) {
	p := RetryPolicy{MaxAttempts: 5, Base: 100 * time.Millisecond, Max: time.Second}
	for attempt := 1; attempt <= 40; attempt++ {
		ceil := min(100*time.Millisecond<<min(attempt-1, 30), time.Second)
		for range 50 {
			if d := p.delay(attempt, 0); d < 0 || d > ceil {
				t.Fatalf("attempt %d: delay %v outside [0, %v]", attempt, d, ceil)
			}
		}
	}
	if d := p.delay(1, 700*time.Millisecond); d != 700*time.Millisecond {
		t.Errorf("Retry-After 700ms: got %v, want 700ms", d)
	}
	if d := p.delay(1, time.Minute); d != time.Second {
		t.Errorf("Retry-After 1m: got %v, want the 1s cap", d)
	}
}
