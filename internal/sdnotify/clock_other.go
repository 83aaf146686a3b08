//go:build !linux

package sdnotify

import (
	"errors"
	"time"
)

// Monotonic returns an error: systemd, and so MONOTONIC_USEC, is Linux-only.
func Monotonic() (time.Duration, error) {
	return 0, errors.New("CLOCK_MONOTONIC not available on this system")
}
