// Package metrics exposes what a running daemon does as Prometheus metrics
// (`methodd run --metrics-addr`): calls by method and status, call
// durations, the session's connection, reloads, running tasks and the
// build, plus the Go runtime's and the process's collectors.
//
// It is the only package of the module that imports client_golang. Its
// Metrics implements daemon.Observer without importing the daemon; every
// metric is registered on a Registry the caller gives (never the global
// DefaultRegisterer), and Serve answers scrapes of that Registry at
// /metrics.
//
// Cardinality is bounded by the handlers files loaded, never by callers:
// a method the active handlers do not have is counted under the method
// label UnknownMethod, and a status outside 100..599 under OtherStatus.
package metrics
