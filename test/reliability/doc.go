// Package reliability holds methodd's fault, abuse and long-run tests
// (issue 9) and the helpers they need: a loopback TCP fault proxy and
// readers of the process's resources (/proc).
//
// The tests drive the real pieces in-process: the local hub
// (internal/localhub) with real TLS and MQTT, the device session
// (internal/device) and the engine, wired as `methodd run` wires them.
// See docs/reliability.md for what is measured and how to run the soak.
package reliability
