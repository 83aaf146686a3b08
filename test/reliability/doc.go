// Package reliability holds methodd's fault, abuse and long-run tests
// (issue 9). The network faults come from internal/faultproxy, the
// process's resources (fds, RSS, left-behind processes) from
// internal/procstat.
//
// The tests drive the real pieces in-process: the local hub
// (internal/localhub) with real TLS and MQTT, and the daemon as `methodd
// run` runs it (internal/daemon: the device session, the engine, reload).
// See docs/reliability.md for what is measured and how to run the soak.
package reliability
