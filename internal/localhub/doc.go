// Package localhub is a local, protocol-faithful Azure IoT Hub for direct
// methods and device twins: MQTT 3.1.1 over TLS (and over secure
// WebSockets) for devices — method requests and replies, twin GET,
// reported patches and desired-property notifications — and the service
// REST API for callers: POST /twins/{d}/methods, GET/PATCH/PUT
// /twins/{d}[/modules/{m}] and the registry (PUT/GET/DELETE
// /devices/{d}[/modules/{m}]).
//
// State lives in the state directory and survives restarts: the policy
// keys (registry.json), one file per identity (identities/) and per twin
// (twins/) and per job (jobs/), the subscriptions of
// persistent sessions (sessions/), the CA and server certificate. Every
// file is written atomically; a corrupt one stops Start with its path and
// is never reset.
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
//     MQTT other than 3.1.1 is CONNACK 1. A device token may also be
//     signed with the iothubowner policy key (skn=iothubowner), which has
//     DeviceConnect on the real hub.
//   - X.509 identities (x509.go): the device listeners request a client
//     certificate and the hub verifies it at CONNECT (the password is
//     ignored). selfSigned: the leaf's SHA-1 or SHA-256 thumbprint matches
//     the primary or secondary one. certificateAuthority: the leaf chains
//     to the hub's CA or a CA registered as a PEM file in DIR/x509/cas
//     (read at start), and its CN is the client id ("dev", or "dev/mod"
//     for a module [unverified for modules]). Both: within its validity
//     at Options.Now. Failures are CONNACK 5 with ErrCertificate. A live
//     X.509 connection is not closed when its certificate expires.
//   - Device topics: SUBSCRIBE may name $iothub/methods/POST/#, the two twin
//     filters and (devices only) devices/{own id}/messages/devicebound/#;
//     the latter is granted but nothing is ever published there. PUBLISH
//     may target method replies, twin requests and the identity's own
//     telemetry (discarded). Anything else, QoS 2 publishes and malformed
//     reply topics close the connection. Keep-alive 0 or above 1177 s is
//     capped at 1177 s.
//   - Twin over MQTT (fleet reference §1): answers go only to a connection
//     holding $iothub/twin/res/# (own or inherited); the others' requests
//     are dropped, as they could not receive the real hub's answer. Errors
//     carry {"errorCode","trackingId","message","timestampUtc"}; the code
//     of every document-rule violation (size included) is 400004
//     ArgumentInvalid (unverified: the real hub may use 413001 for size).
//     Java v2's expected-version property (&$version=) is ignored. Desired
//     changes reach only a live connection holding the desired filter;
//     nothing is queued for offline devices (as the real hub). Persistent
//     sessions' subscriptions are saved in sessions/ and restored to a
//     clean-session-0 connection after a hub restart, whose CONNACK then
//     says session present.
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
//     must be iothubowner or service on the methods and twin routes, and
//     iothubowner on the registry routes (the service policy lacks registry
//     read/write there too); unknown and non-canonical paths are 404 with
//     an ASP.NET-style message and no error code; other HTTP methods on a
//     known path are 405 405001 with Allow; an escaped "/" (%2F) is part of
//     the ID it appears in, so /twins/d%2Fm/methods names device "d/m"
//     (404001), never module m of d; a body over 144 KB is 413001 without
//     being read to its end; x-ms-request-id is a random version-4 UUID.
//   - REST error bodies: the methods routes answer the current nested
//     format (A); the twin and registry routes the legacy
//     "ErrorCode:Name;text" format (B), the only one the Node SDK maps to
//     DeviceNotFoundError (and whose text it shows for 409 and 412), and the
//     one real registry errors were captured in (DeviceAlreadyExists).
//   - REST twins: If-Match is compared after stripping its quotes (and a
//     W/ prefix), so an unquoted stale etag is 412 too (the real hub is
//     reported to ignore unquoted etags); "*" or no If-Match is
//     unconditional. Success carries the twin's quoted etag in ETag.
//   - REST registry: PUT without If-Match creates (409001/409301 when the
//     identity exists); with "*" it updates or creates; with an etag it
//     updates (412001 on a mismatch, 404001/404010 when absent). DELETE
//     takes "*", no If-Match or the etag, answers 204 and removes a
//     device's modules, all their twins and keys, closes their connections
//     and drops their broker sessions. Keys absent or empty are generated
//     on create and kept on update; keys given must be base64 of 16-64
//     bytes. Identity etags are base64 of a decimal counter ("MA==" first),
//     generationId the creation time in .NET ticks. Authentication types
//     sas, selfSigned (thumbprints) and certificateAuthority; credentials
//     that do not fit the type, and iotEdge true, are 400004.
//     connectionStateUpdatedTime and lastActivityTime are not
//     tracked ("0001-01-01T00:00:00Z").
//   - Disabled devices (status "disabled"; modules have no status, as on
//     the real hub): CONNECT is CONNACK 5 (ErrIdentityDisabled), live
//     connections are closed, and method calls are 404001 DeviceNotFound,
//     which the method reference gives for "not registered or disabled".
//     A module of a disabled device is refused the same way [unverified].
//     Twin and registry reads keep working and show the status.
//   - Query (POST /devices/query): the twinquery subset; a query it refuses
//     is 400004 with "Syntax error at position N" (the real code is
//     unverified); pages of 100 by default, 1..1000 asked with
//     x-ms-max-item-count; items in client-id order (device id, job id for
//     devices.jobs); a continuation token is bound to its query's text and
//     sent only when more items follow.
//   - Jobs v2: a job snapshots the device twins its condition matches
//     when it starts and calls them 64 at a time in id order; any device
//     reply completes its record (the status is in the outcome); offline
//     devices fail at once with 404103; statistics are counted from the
//     records, so they always add up (canceled devices count as failed).
//     Past maxExecutionTimeInSeconds (default 3600) pending devices fail
//     with JobTimeout and the job ends failed. Unknown job: 404 404002
//     JobNotFound; duplicate id: 409 JobAlreadyExists; cancelling a job
//     that has ended: 400 OperationNotAllowedInCurrentState (the text a
//     real hub gave in azure-iot-sdk-node#464; the status is a guess); a
//     running job may be cancelled (its calls in flight finish). Jobs
//     persist in jobs/<id>.json at every status change and at most once a
//     second while running; a job running when the hub stopped ends failed
//     at the next start, its unfinished devices failed with HubRestarted.
//   - DPS (dps*.go, Options.DPSAddr): symmetric-key enrollment groups and
//     individual enrollments; the token is checked at register time (a
//     bad one gets CONNACK 0, then 401 401002, as real DPS does); 202
//     assigning with retry-after 1 s (real DPS: 3 s), then 200 assigned to
//     this hub ("localhost") on the poll, the device created in the
//     registry with the enrollment's (or derived) key. Other error codes
//     (400004, 404002, 429001, 500001), the answer to a disabled
//     enrollment (200, status "disabled") and the substatus of a
//     re-registration after the device was deleted (deviceDataReset) are
//     [unverified]. No X.509 attestation yet.
//   - Close fails pending calls with 503001 ServiceUnavailable.
//   - Network bounds (issue 19; admission.go, rest_bounds.go,
//     listeners.go): every device connection (MQTT/TLS, WSS, DPS) must
//     finish its TLS handshake, WSS upgrade and CONNECT within
//     Options.ConnectTimeout (30 s; the deadline is set at accept, before
//     crypto/tls's lazy handshake). HTTPS requests get
//     Options.RequestTimeout (30 s) for handshake plus headers, for the
//     body (a per-request read deadline, lifted after the body so a
//     method call may wait up to 600 s for its device) and for each
//     response write; idle keep-alive connections close after
//     Options.IdleTimeout (2 min); headers are capped at 32 KB. Bodies
//     are capped per route (methods, jobs, twins 144 KB; registry 16 KB;
//     query 64 KB) with 413001 and Connection: close. The SAS is checked
//     before a byte of the body is read, and a 401 closes the
//     connection. Each listener admits at most Options.MaxPendingConns
//     (256) connections that have not authenticated yet (a device before
//     its CONNACK 0, a service client before its first authorized
//     request); past it new connections are closed at once, logged at
//     most every 10 s.
//   - CONNACKs are MQTT 3.1.1's on every listener, whatever protocol level
//     the CONNECT claimed: mochi would answer a level-5 CONNECT with a v5
//     CONNACK (0x84 plus properties) and a bad protocol name or level
//     with 0x82. Mapped: protocol problems 1, client-id problems 2,
//     overload 3, anything else 5 (bad credentials included, as before).
//   - Ids: every REST route checks its path ids with the registry's rule
//     (and refuses "." and ".."), after authorization and before the
//     body: an id outside it, an escaped "/" (dev%2Fmod) included, is 400
//     400004 ArgumentInvalid, never a module separator and never 404 (no
//     identity can carry such an id; what the real hub answers was not
//     observable). MQTT client ids follow the same rule (CONNACK 5), DPS
//     registration ids their own ([a-z0-9-]{1,128}).
//   - State dir (statedir.go): Start takes an exclusive flock on
//     DIR/hub.lock for the hub's lifetime and writes its pid, command and
//     start time there; a second hub (methodd hub, run --local) on the
//     same dir fails with ErrDirLocked naming that holder (after retrying
//     for 1 s, so a CLI's liveness probe never blocks a start). Start
//     refuses (ErrDirUnsafe, naming the path and the chmod/chown fix) a
//     DIR, or anything in it, not owned by the effective user, writable
//     by group or others, or a symbolic link. hub.json is kept at Close
//     (tools and restarts read it) and now carries "pid" and "startedAt";
//     whether its hub runs is the lock's answer (Running), which the
//     CLI's --local commands ask before calling: a dead hub, SIGKILL
//     included, is "not running (last started by pid N at T)", exit 5.
package localhub
