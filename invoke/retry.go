package invoke

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/methodd/methodd/iothub"
)

// RetryPolicy bounds the retries of throttled (HTTP 429) and unavailable
// (HTTP 503) answers: the hub refused those calls before delivering them, so
// repeating them cannot run a method twice. The n-th wait is a random
// duration in [0, min(Max, Base·2ⁿ⁻¹)] ("full jitter"), or the hub's
// Retry-After when that is longer (still capped at Max).
type RetryPolicy struct {
	MaxAttempts int           // total attempts, including the first; 1 disables retries
	Base        time.Duration // first back-off ceiling
	Max         time.Duration // largest single wait
}

// DefaultRetry returns the policy used for zero fields of
// ClientOptions.Retry: 5 attempts, 250 ms first ceiling, 8 s largest wait.
func DefaultRetry() RetryPolicy {
	return RetryPolicy{MaxAttempts: 5, Base: 250 * time.Millisecond, Max: 8 * time.Second}
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	d := DefaultRetry()
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = d.MaxAttempts
	}
	if p.Base <= 0 {
		p.Base = d.Base
	}
	if p.Max <= 0 {
		p.Max = d.Max
	}
	return p
}

// delay is the wait after the given failed attempt (1-based).
func (p RetryPolicy) delay(attempt int, retryAfter time.Duration) time.Duration {
	ceil := p.Base << min(attempt-1, 30)
	if ceil <= 0 || ceil > p.Max {
		ceil = p.Max
	}
	d := time.Duration(rand.Int64N(int64(ceil) + 1))
	if retryAfter > d {
		d = min(retryAfter, p.Max)
	}
	return d
}

// retryable reports whether err is a hub answer that may be repeated.
func retryable(err error) bool {
	var he *iothub.Error
	return errors.As(err, &he) && (he.HTTPStatus == http.StatusTooManyRequests || he.HTTPStatus == http.StatusServiceUnavailable)
}

// retryAfterOf reads a Retry-After given in seconds; dates are ignored.
func retryAfterOf(resp *http.Response) time.Duration {
	s, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if err != nil || s < 0 {
		return 0
	}
	return time.Duration(s) * time.Second
}

// wait blocks for d or until ctx ends.
func wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
