package iothub

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Device twin topics (fleet reference §1.1). The verbs are upper case; the
// same topics serve devices and modules.
const (
	TwinResponseSubscription = "$iothub/twin/res/#"
	TwinDesiredSubscription  = "$iothub/twin/PATCH/properties/desired/#"

	twinGetPrefix      = "$iothub/twin/GET/"
	twinReportedPrefix = "$iothub/twin/PATCH/properties/reported/"
	twinResponsePrefix = "$iothub/twin/res/"
	twinDesiredPrefix  = "$iothub/twin/PATCH/properties/desired/"
)

// TwinOp is what a device asks of its twin.
type TwinOp int

// Twin operations a device publishes.
const (
	TwinGet           TwinOp = iota + 1 // $iothub/twin/GET/?$rid=
	TwinPatchReported                   // $iothub/twin/PATCH/properties/reported/?$rid=
)

// TwinGetTopic is the topic a device publishes a twin GET on (§1.2).
func TwinGetTopic(rid string) string { return twinGetPrefix + ridPrefix + rid }

// TwinReportedTopic is the topic a device publishes a reported-properties
// patch on (§1.3).
func TwinReportedTopic(rid string) string { return twinReportedPrefix + ridPrefix + rid }

// IsTwinRequestTopic reports whether topic is in the namespace of twin
// requests a device may publish (GET or reported PATCH), valid or not.
func IsTwinRequestTopic(topic string) bool {
	return strings.HasPrefix(topic, twinGetPrefix) || strings.HasPrefix(topic, twinReportedPrefix)
}

// ParseTwinRequestTopic splits "$iothub/twin/GET/?$rid={rid}" and
// "$iothub/twin/PATCH/properties/reported/?$rid={rid}[&$version={n}]". The
// rid is opaque. version is the expected reported version Java v2 sends
// (&$version=), 0 when absent. The error wraps ErrTopic.
func ParseTwinRequestTopic(topic string) (op TwinOp, rid string, version int64, err error) {
	var props string
	switch {
	case strings.HasPrefix(topic, twinGetPrefix):
		op, props = TwinGet, topic[len(twinGetPrefix):]
	case strings.HasPrefix(topic, twinReportedPrefix):
		op, props = TwinPatchReported, topic[len(twinReportedPrefix):]
	default:
		return 0, "", 0, fmt.Errorf("%w: not a twin request", ErrTopic)
	}
	if rid, err = parseRID(props); err != nil {
		return 0, "", 0, err
	}
	if version, err = versionProperty(props); err != nil {
		return 0, "", 0, err
	}
	return op, rid, version, nil
}

// TwinResponseTopic is the topic a hub answers a twin request on (§1.2,
// §1.3): "$iothub/twin/res/{status}/?$rid={rid}", with "&$version={n}"
// when version > 0 (reported-patch successes).
func TwinResponseTopic(status int, rid string, version int64) string {
	t := twinResponsePrefix + strconv.Itoa(status) + "/" + ridPrefix + rid
	if version > 0 {
		t += "&$version=" + strconv.FormatInt(version, 10)
	}
	return t
}

// IsTwinResponseTopic reports whether topic is in the twin-response
// namespace, valid or not.
func IsTwinResponseTopic(topic string) bool { return strings.HasPrefix(topic, twinResponsePrefix) }

// ParseTwinResponseTopic splits a twin response topic. version is 0 when
// the topic carries none. The error wraps ErrTopic.
func ParseTwinResponseTopic(topic string) (status int, rid string, version int64, err error) {
	rest, ok := strings.CutPrefix(topic, twinResponsePrefix)
	if !ok {
		return 0, "", 0, fmt.Errorf("%w: no %q prefix", ErrTopic, twinResponsePrefix)
	}
	s, props, ok := strings.Cut(rest, "/")
	if !ok {
		return 0, "", 0, fmt.Errorf("%w: no status", ErrTopic)
	}
	if status, err = strconv.Atoi(s); err != nil {
		return 0, "", 0, fmt.Errorf("%w: status %q is not an integer", ErrTopic, s)
	}
	if rid, err = parseRID(props); err != nil {
		return 0, "", 0, err
	}
	if version, err = versionProperty(props); err != nil {
		return 0, "", 0, err
	}
	return status, rid, version, nil
}

// DesiredPatchTopic is the topic a hub notifies a desired-properties change
// on (§1.4).
func DesiredPatchTopic(version int64) string {
	return twinDesiredPrefix + "?$version=" + strconv.FormatInt(version, 10)
}

// versionProperty reads the $version property of a topic's "?…" part; 0
// when absent. The error wraps ErrTopic.
func versionProperty(props string) (int64, error) {
	q, ok := strings.CutPrefix(props, "?")
	if !ok {
		return 0, nil
	}
	for kv := range strings.SplitSeq(q, "&") {
		v, ok := strings.CutPrefix(kv, "$version=")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return 0, fmt.Errorf("%w: $version %q is not a positive integer", ErrTopic, v)
		}
		return n, nil
	}
	return 0, nil
}

// TwinError is the body of a twin error response on MQTT (§1.5). The Node
// SDK decides success by the body: an error response must carry one with a
// non-zero ErrorCode.
type TwinError struct {
	ErrorCode    int    `json:"errorCode"`
	TrackingID   string `json:"trackingId"`
	Message      string `json:"message"`
	TimestampUTC string `json:"timestampUtc"`
}

// TwinErrorBody renders the MQTT error body of e, stamped at now.
func TwinErrorBody(e *Error, trackingID string, now time.Time) []byte {
	b, _ := json.Marshal(TwinError{ErrorCode: e.Code, TrackingID: trackingID, Message: e.Message,
		TimestampUTC: now.UTC().Format("2006-01-02T15:04:05.0000000Z")})
	return b
}

// TwinPath is the service REST path of a device or module twin, with IDs
// path-escaped (§2.1), without the query.
func TwinPath(device, module string) string {
	p := "/twins/" + url.PathEscape(device)
	if module != "" {
		p += "/modules/" + url.PathEscape(module)
	}
	return p
}

// DevicePath is the registry REST path of a device or module identity,
// with IDs path-escaped, without the query.
func DevicePath(device, module string) string {
	p := "/devices/" + url.PathEscape(device)
	if module != "" {
		p += "/modules/" + url.PathEscape(module)
	}
	return p
}
