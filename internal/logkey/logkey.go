// Package logkey names the attribute keys of every log line methodd writes,
// so that one thing has one spelling across the binary (a request id is
// always "requestId", an error always "err") and log queries keep working
// as the code changes. It holds constants only and imports nothing.
//
// A key here is part of the log's contract: rename none; add freely.
//
// A time span is logged as an int64 count of milliseconds under a key that
// ends in "Ms" (DurationMs, RetryInMs, ...), never as a time.Duration: the
// JSON handler would print that as nanoseconds. (retryIn, timeout, grace and
// window were such durations; their Ms keys replaced them.)
package logkey

// Keys shared by several components.
const (
	Component  = "component"  // the part of the daemon or hub that logs
	Err        = "err"        // an error's text
	Method     = "method"     // a direct method's name
	RequestID  = "requestId"  // a call's $rid (device side) or request id
	Status     = "status"     // a method reply's status
	DurationMs = "durationMs" // how long something took, in milliseconds
	DeviceID   = "deviceId"   // a device identity
	ModuleID   = "moduleId"   // a module identity ("" for a device)
	ClientID   = "clientId"   // an MQTT client id: device or device/module
	Identity   = "identity"   // the identity a session runs as (its client id)
	File       = "file"       // a file's path
	Path       = "path"       // a path other than the config file (a URL path, a watched name)
	Reason     = "reason"     // why something was refused or dropped
	Conn       = "conn"       // a device session's connection number
)

// Keys of the daemon (`methodd run`).
const (
	Digest       = "digest"       // a handlers file's SHA-256
	Methods      = "methods"      // a method count
	Trigger      = "trigger"      // what started a reload: file or request
	Active       = "active"       // the handlers serving after a reload
	Diagnostic   = "diagnostic"   // one config problem, "FILE:LINE:COL: message"
	Problems     = "problems"     // how many problems a file has
	Source       = "source"       // where the identity came from (never the secret itself)
	Host         = "host"         // the hub's host name
	Dial         = "dial"         // the address dialled (a gateway or the hub)
	ExitCode     = "exitCode"     // a command's exit status
	Transport    = "transport"    // mqtt or mqtt-ws
	Renewal      = "renewal"      // a connection that renews the SAS token
	RetryInMs    = "retryInMs"    // the back-off before the next attempt, in milliseconds
	TokenExpiry  = "tokenExpiry"  // when the SAS token expires
	Subscription = "subscription" // the topic filter subscribed
	Topic        = "topic"        // an MQTT topic
	Bytes        = "bytes"        // a size in bytes
	TimeoutMs    = "timeoutMs"    // a time bound that was reached, in milliseconds
	GraceMs      = "graceMs"      // a grace period, in milliseconds
	Expiry       = "expiry"       // an expiry time
	Payload      = "payload"      // a payload, at Debug only
	Reply        = "reply"        // a reply payload, at Debug only
	Op           = "op"           // a file-system event's operation
	Dir          = "dir"          // a directory
	Pattern      = "pattern"      // a pattern (regular expression)
	PID          = "pid"          // a process id (a detached command's)
	Unit         = "unit"         // a systemd unit's name (a detached command's)
)

// Keys of the local hub (`methodd hub`).
const (
	MQTTAddr     = "mqttAddr"     // the MQTT/TLS listen address
	HTTPSAddr    = "httpsAddr"    // the HTTPS listen address
	WSAddr       = "wsAddr"       // the WSS listen address
	Remote       = "remote"       // a client's address
	ErrorCode    = "errorCode"    // an IoT Hub error code (404103, ...)
	TrackingID   = "trackingId"   // an IoT Hub error's tracking id
	CleanSession = "cleanSession" // an MQTT CONNECT's clean-session flag
	Devices      = "devices"      // a count of identities

	Listener          = "listener"          // the hub listener a client came through (mqtts or wss)
	Keepalive         = "keepalive"         // an MQTT connection's keep-alive, in seconds
	MethodsSubscribed = "methodsSubscribed" // whether a connection holds the methods subscription
	JobID             = "jobId"             // a jobs v2 job id
)

// Keys of the Device Provisioning Service (the hub's endpoint and the
// device's client).
const (
	DPSAddr        = "dpsAddr"        // the DPS listen address or endpoint
	IDScope        = "idScope"        // a DPS id scope
	RegistrationID = "registrationId" // a DPS registration id
	OperationID    = "operationId"    // a DPS registration operation id
	Enrollment     = "enrollment"     // a DPS enrollment: group name or registration id
	EnrollmentKind = "enrollmentKind" // group or individual
	Enabled        = "enabled"        // whether something is enabled
	Substatus      = "substatus"      // a DPS registration's substatus
	AssignedHub    = "assignedHub"    // the IoT hub DPS assigned
	Attempt        = "attempt"        // the number of an attempt
)

// Keys of the tasks of async methods.
const (
	TaskID = "taskId" // a task of an async method
)

// Keys of repeated connection failures and duplicate identities.
const (
	Cause    = "cause"    // the distinct cause of repeated failures
	Attempts = "attempts" // how many attempts failed with it
	Since    = "since"    // when that started
	Drops    = "drops"    // connections dropped right after connecting
	WindowMs = "windowMs" // the window they were counted in, in milliseconds
)

// Keys of the local hub's admission control.
const (
	Limit   = "limit"   // a configured bound
	Refused = "refused" // how many were refused since the last line
)

// Keys of the metrics endpoint (`methodd run --metrics-addr`).
const (
	MetricsURL = "metricsUrl" // the URL Prometheus scrapes
)
