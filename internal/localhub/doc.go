// Package localhub is a local, protocol-faithful Azure IoT Hub for direct
// methods: MQTT 3.1.1 over TLS (and over secure WebSockets) for devices, and
// the service REST API (POST /twins/{d}/methods) for callers.
//
// It is strict exactly where the real hub is strict (shared/docs/design.md
// §4, shared/docs/iothub-protocol.md), so that code which works against it
// works against Azure: SAS tokens are verified over sr as sent, usernames
// must carry api-version, one live connection per identity, persistent
// sessions keep the methods subscription, and any topic outside the IoT Hub
// namespace disconnects the client.
//
// It is the only importer of github.com/mochi-mqtt/server/v2. Protocol
// vocabulary (tokens, topics, bodies, error codes) comes from package iothub.
//
// Decisions where the protocol is silent or unverified are documented on the
// functions that make them; see Hub.Invoke and the REST handler.
package localhub
