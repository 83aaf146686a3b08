// Package iothub is the vocabulary of the Azure IoT Hub direct-method
// protocol: connection strings, SAS tokens, MQTT identities and topics, and
// the service REST API's request, result and error bodies.
//
// It is standard library only and does no I/O. The ground truth is
// shared/docs/iothub-protocol.md; section numbers in comments refer to it.
// Nothing in this package puts a key or signature into an error message.
package iothub

// APIVersion is the api-version sent in MQTT usernames and REST queries
// (the Node SDK's and the docs' current value, §3.2 and §5.1).
const APIVersion = "2021-04-12"

// MaxPayloadBytes is the limit for a method's request payload and for its
// response payload (§4.4).
const MaxPayloadBytes = 128 * 1024
