package engine

import (
	"log/slog"
	"time"
)

// Options configures how a Set is built and how it runs calls. The zero
// value is ready to use.
type Options struct {
	// Logger receives one Info line per call (method, requestId, deviceId,
	// status, durationMs, exitCode) and the payloads at Debug. nil discards.
	Logger *slog.Logger
	// Now is the clock behind now(), the built-in ping and LoadedAt. nil is
	// time.Now.
	Now func() time.Time
	// Environ returns the daemon's environment ("NAME=value" entries). A
	// command's base environment takes only PATH, LANG and HOME from it;
	// expressions read it through env(name). nil is os.Environ.
	Environ func() []string
	// Hostname backs hostname(); nil is os.Hostname.
	Hostname func() (string, error)
	// Uptime backs uptime(); nil reads the host's uptime from /proc/uptime.
	Uptime func() (time.Duration, error)
	// KillGrace is the time between SIGTERM and SIGKILL when a command times
	// out. Zero means 2s.
	KillGrace time.Duration
	// DrainTimeout bounds how long a command's output is still read after
	// the command itself has exited (background processes that escaped the
	// process group may hold the pipes open). Zero means 1s.
	DrainTimeout time.Duration
	// NewTaskID names the tasks of async methods; nil makes 32 random hex
	// digits. Tests and documented examples make them predictable.
	NewTaskID func() string
}

// Defaults of Options.
const (
	DefaultKillGrace    = 2 * time.Second
	DefaultDrainTimeout = time.Second
)
