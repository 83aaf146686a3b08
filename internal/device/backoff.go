package device

import (
	"math/rand/v2"
	"time"
)

// backoff computes reconnect delays: exponential from min, capped at max,
// with "equal jitter" (half the step fixed, half random) so that a fleet of
// devices dropped together does not reconnect in lockstep, while no delay is
// shorter than half the step.
type backoff struct {
	min, max time.Duration
	rand     func() float64 // in [0,1); rand.Float64 by default
}

func newBackoff(floor, ceiling time.Duration) backoff {
	return backoff{min: floor, max: ceiling, rand: rand.Float64}
}

// delay returns the wait before attempt n (0-based) after a failure.
func (b backoff) delay(n int) time.Duration {
	step := b.min
	for i := 0; i < n && step < b.max; i++ {
		step *= 2
	}
	step = min(step, b.max)
	half := step / 2
	return half + time.Duration(b.rand()*float64(step-half))
}
