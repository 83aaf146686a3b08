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
// What happens to device connections is logged (with the keys of package
// logkey) and, for programs and tests that act on it, reported as typed
// Events to Options.OnEvent: refusals with their CONNACK code and reason,
// connections, subscriptions, kicks, token expiries, disconnections and
// dropped replies.
//
// # Decisions where the protocol reference is silent or unverified
//
//   - Device login: any failure (username, client id, unknown identity, SAS
//     signature, expiry, audience, a will topic other than the identity's
//     telemetry) is CONNACK 5 and leaves the identity's live session alone.
//     MQTT other than 3.1.1 is CONNACK 1. X.509 client certificates are not
//     supported. A device token may also be signed with the iothubowner
//     policy key (skn=iothubowner), which has DeviceConnect on the real hub.
//   - Device topics: SUBSCRIBE may name $iothub/methods/POST/#, the two twin
//     filters and (devices only) devices/{own id}/messages/devicebound/#;
//     the latter three are granted but nothing is ever published there.
//     PUBLISH may target method replies and the identity's own telemetry
//     (discarded). Anything else, QoS 2 publishes and malformed reply topics
//     close the connection. Keep-alive 0 or above 1177 s is capped at 1177 s.
//   - Method requests are written at QoS 0 whatever the subscription QoS
//     ("method requests are QoS 0").
//   - Replies: correlated by $rid and by the identity the request went to;
//     others are logged, reported (EventReplyDropped) and dropped. Empty body → payload null; a body that
//     is not JSON → {"status":500,"payload":null} (IoT Edge's answer); a body
//     over 128 KB → 413001 MessageTooLarge for the caller; packets over
//     257 KB close the device's connection.
//   - A new connection of a live identity kicks the old one before its own
//     CONNACK is written. Calls made in between wait (at most 5 s) for the
//     new connection instead of failing with 404103, so a device that
//     renews its SAS by connecting again (make before break) is never seen
//     offline; the real hub's behaviour in that gap is unverified.
//   - A device that disconnects while a call is pending does not fail it:
//     the call waits for its response timeout (a reply from the same
//     identity on a new connection still completes it).
//   - REST: api-version is required (any value; 400004 without it); skn
//     must be iothubowner or service; unknown and non-canonical paths are
//     404 with an ASP.NET-style message and no error code; other HTTP
//     methods on the methods paths are 405 405001; an escaped "/" (%2F)
//     is part of the ID it appears in, so /twins/d%2Fm/methods names
//     device "d/m" (404001), never module m of d; a body over 144 KB is
//     413001 without being read to its end; x-ms-request-id is a random
//     version-4 UUID.
//   - Close fails pending calls with 503001 ServiceUnavailable.
package localhub
