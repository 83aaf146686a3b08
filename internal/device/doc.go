// Package device is the device side of Azure IoT Hub direct methods: one MQTT
// session that connects a device or module identity to a hub, keeps it
// connected through network drops, token expiries and hub restarts, and hands
// every method request to a Handler, publishing exactly one reply per request.
//
// It is the only package that imports the paho MQTT client. It knows nothing
// of handlers.yaml: the consumer supplies a Handler. The wire rules are those
// of shared/docs/iothub-protocol.md §3, §4 and §7:
//
//   - MQTT 3.1.1 over TLS (port 8883 unless the dial host names one) or over
//     WebSockets (wss://host[:443]/$iothub/websocket, subprotocol "mqtt",
//     HTTPS_PROXY honoured); clean session 0; client id "device" or
//     "device/module"; username with api-version.
//   - The password is a SAS token minted afresh at every (re)connect from the
//     identity's key and renewed before it expires by connecting again at about
//     80 % of its lifetime. A fixed SharedAccessSignature is used as given (it
//     cannot be renewed; a warning is logged as its expiry approaches). X.509
//     identities send no password.
//   - "$iothub/methods/POST/#" is subscribed at QoS 0 after every connect, and
//     the session reports itself connected only after the SUBACK.
//   - Every request runs in its own goroutine (bounded; the excess gets an
//     immediate 503 reply), so a slow handler never blocks the receive loop.
//   - Session.ReportProperties patches the twin's reported properties
//     (shared/docs/iothub-fleet-protocol.md §1.3): "$iothub/twin/res/#" is
//     subscribed lazily on the connection's first report, never as part of
//     connecting, so a hub that refuses twins never delays method calls.
//
// A fresh paho client is built for every connection, so that no per-connection
// state (inflight ids, stores, routes) outlives the connection it belongs to.
// Each request is tagged with the connection it arrived on; its reply is sent
// on that connection, or, when that connection was retired by a planned SAS
// renewal, on the connection that replaced it (the MQTT session is the same
// and the hub still waits for the reply). Before a renewal connects, replies
// wait for the new connection and a SUBSCRIBE round trip on the old one
// proves the hub has read every reply already written there: the hub closes
// the old connection as soon as the new one connects, losing what it had
// not read. A reply whose connection was lost
// is dropped: the service has already failed that call.
package device
