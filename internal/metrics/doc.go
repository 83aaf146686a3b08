// Package metrics exposes what a running daemon does as Prometheus metrics
// (`methodd run --metrics-addr`): calls by method and status, call
// durations, the session's connection, reloads, running tasks and the
// build, plus a subset of the Go runtime's and the process's standard metrics
// (the names client_golang gives them).
//
// It produces the Prometheus text exposition format 0.0.4 itself, on a
// small Registry of its own (registry.go, expose.go), rather than linking
// client_golang, whose package initialisation alone costs every daemon
// about 2.5 MB of idle RSS, metrics on or off; tests check the output with
// Prometheus's own parser. Its Metrics implements daemon.Observer without
// importing the daemon; every metric is registered on a Registry the caller
// gives (there is no default one), and Serve answers scrapes of that
// Registry at /metrics.
//
// Cardinality is bounded by the handlers files loaded, never by callers:
// a method the active handlers do not have is counted under the method
// label UnknownMethod, and a status outside 100..599 under OtherStatus.
package metrics
