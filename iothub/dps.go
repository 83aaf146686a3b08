package iothub

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Device Provisioning Service over MQTT (fleet reference §5).
const (
	// DPSGlobalEndpoint is the public DPS host (MQTT/TLS on 8883, MQTT over
	// WebSockets on 443).
	DPSGlobalEndpoint = "global.azure-devices-provisioning.net"
	// DPSAPIVersion is the api-version of the MQTT username (§5.1).
	DPSAPIVersion = "2019-03-31"
	// DPSResponseSubscription is the filter a registering device subscribes
	// to (§5.4).
	DPSResponseSubscription = "$dps/registrations/res/#"
	// DPSKeyName is the skn of a DPS SAS in the Node form (§5.2).
	DPSKeyName = "registration"

	dpsRegisterPrefix = "$dps/registrations/PUT/iotdps-register/"
	dpsPollPrefix     = "$dps/registrations/GET/iotdps-get-operationstatus/"
	dpsResponsePrefix = "$dps/registrations/res/"
)

// DPS registration statuses (the body's status and registrationState.status,
// §5.4). Clients compare them case-insensitively.
const (
	DPSStatusAssigning  = "assigning"
	DPSStatusAssigned   = "assigned"
	DPSStatusFailed     = "failed"
	DPSStatusDisabled   = "disabled"
	DPSStatusUnassigned = "unassigned"
)

// ErrDPSTopic is wrapped by every DPS topic and username parse error.
var ErrDPSTopic = errors.New("not a DPS topic")

// DPSResource is the SAS resource of a registration (before encoding):
// "{idScope}/registrations/{registrationID}" (§5.2).
func DPSResource(idScope, registrationID string) string {
	return idScope + "/registrations/" + registrationID
}

// DPSUsername is the MQTT username of a registration (§5.1, TV-D4):
// "{idScope}/registrations/{registrationID}/api-version=2019-03-31", with
// "&ClientVersion={enc}" when clientVersion is set. There is no '?' before
// api-version.
func DPSUsername(idScope, registrationID, clientVersion string) string {
	u := DPSResource(idScope, registrationID) + "/api-version=" + DPSAPIVersion
	if clientVersion != "" {
		u += "&ClientVersion=" + url.QueryEscape(clientVersion)
	}
	return u
}

// ParseDPSUsername splits a DPS username into its id scope and
// registration id. It accepts a '?' before the query (some clients write
// one) and requires api-version. The error wraps ErrDPSTopic.
func ParseDPSUsername(u string) (idScope, registrationID string, err error) {
	scope, rest, ok := strings.Cut(u, "/registrations/")
	if !ok || scope == "" {
		return "", "", fmt.Errorf("%w: username %q: want {idScope}/registrations/{registrationId}/api-version={version}", ErrDPSTopic, u)
	}
	reg, query, ok := strings.Cut(rest, "/")
	if !ok || reg == "" {
		return "", "", fmt.Errorf("%w: username: no registration id", ErrDPSTopic)
	}
	q, err := url.ParseQuery(strings.TrimPrefix(query, "?"))
	if err != nil || q.Get("api-version") == "" {
		return "", "", fmt.Errorf("%w: username: no api-version", ErrDPSTopic)
	}
	return scope, reg, nil
}

// SignDPS mints a DPS token in the Node SDK's form (TV-D2): sr not
// encoded, fields in the order sr, sig, skn=registration, se.
func SignDPS(idScope, registrationID, base64Key string, expiry time.Time) (string, error) {
	key, err := base64.StdEncoding.DecodeString(base64Key)
	if err != nil {
		return "", errors.New("sign: key is not valid base64")
	}
	sr := DPSResource(idScope, registrationID)
	se := strconv.FormatInt(expiry.Unix(), 10)
	sig := url.QueryEscape(base64.StdEncoding.EncodeToString(mac(key, sr+"\n"+se)))
	return sasPrefix + "sr=" + sr + "&sig=" + sig + "&skn=" + DPSKeyName + "&se=" + se, nil
}

// DeriveDeviceKey is a group enrollment's device key (§5.3, TV-D1):
// base64(HMAC-SHA256(base64decode(groupKey), registrationID)).
func DeriveDeviceKey(groupKey, registrationID string) (string, error) {
	key, err := base64.StdEncoding.DecodeString(groupKey)
	if err != nil {
		return "", errors.New("derive device key: group key is not valid base64")
	}
	h := hmac.New(sha256.New, key)
	h.Write([]byte(registrationID))
	return base64.StdEncoding.EncodeToString(h.Sum(nil)), nil
}

// DPSOp is what a registering device asks.
type DPSOp int

// DPS requests a device publishes (§5.4).
const (
	DPSRegister DPSOp = iota + 1 // $dps/registrations/PUT/iotdps-register/?$rid=
	DPSPoll                      // $dps/registrations/GET/iotdps-get-operationstatus/?$rid=&operationId=
)

// DPSRegisterTopic is the topic of a register request.
func DPSRegisterTopic(rid string) string { return dpsRegisterPrefix + ridPrefix + rid }

// DPSPollTopic is the topic of an operation-status poll. operationID is
// put in as it is (the Node SDK does not escape it either).
func DPSPollTopic(rid, operationID string) string {
	return dpsPollPrefix + ridPrefix + rid + "&operationId=" + operationID
}

// ParseDPSRequestTopic splits a register or poll topic; operationID is set
// for a poll (required there). The error wraps ErrDPSTopic.
func ParseDPSRequestTopic(topic string) (op DPSOp, rid, operationID string, err error) {
	var props string
	switch {
	case strings.HasPrefix(topic, dpsRegisterPrefix):
		op, props = DPSRegister, topic[len(dpsRegisterPrefix):]
	case strings.HasPrefix(topic, dpsPollPrefix):
		op, props = DPSPoll, topic[len(dpsPollPrefix):]
	default:
		return 0, "", "", fmt.Errorf("%w: %q is not a register or poll topic", ErrDPSTopic, topic)
	}
	q, err := dpsProperties(props)
	if err != nil {
		return 0, "", "", err
	}
	rid = q.Get("$rid")
	if rid == "" {
		return 0, "", "", fmt.Errorf("%w: no $rid", ErrDPSTopic)
	}
	operationID = q.Get("operationId")
	if op == DPSPoll && operationID == "" {
		return 0, "", "", fmt.Errorf("%w: poll without operationId", ErrDPSTopic)
	}
	return op, rid, operationID, nil
}

// DPSResponseTopic is "$dps/registrations/res/{status}/?$rid={rid}", with
// "&retry-after={seconds}" when retryAfter > 0 (§5.4: on 202 and 429).
func DPSResponseTopic(status int, rid string, retryAfter time.Duration) string {
	t := dpsResponsePrefix + strconv.Itoa(status) + "/" + ridPrefix + rid
	if retryAfter > 0 {
		t += "&retry-after=" + strconv.FormatInt(int64((retryAfter+time.Second-1)/time.Second), 10)
	}
	return t
}

// ParseDPSResponseTopic splits a response topic. retryAfter is zero when
// the topic has none; an unparsable retry-after is an error. The error
// wraps ErrDPSTopic.
func ParseDPSResponseTopic(topic string) (status int, rid string, retryAfter time.Duration, err error) {
	rest, ok := strings.CutPrefix(topic, dpsResponsePrefix)
	if !ok {
		return 0, "", 0, fmt.Errorf("%w: %q is not a response topic", ErrDPSTopic, topic)
	}
	code, props, ok := strings.Cut(rest, "/")
	status, err = strconv.Atoi(code)
	if !ok || err != nil || status < 100 || status > 999 {
		return 0, "", 0, fmt.Errorf("%w: bad status in %q", ErrDPSTopic, topic)
	}
	q, err := dpsProperties(props)
	if err != nil {
		return 0, "", 0, err
	}
	if ra := q.Get("retry-after"); ra != "" {
		n, err := strconv.Atoi(ra)
		if err != nil || n < 0 || n > 24*3600 {
			return 0, "", 0, fmt.Errorf("%w: retry-after %q is not a number of seconds", ErrDPSTopic, ra)
		}
		retryAfter = time.Duration(n) * time.Second
	}
	return status, q.Get("$rid"), retryAfter, nil
}

// dpsProperties parses the "?k=v&k=v" tail of a DPS topic.
func dpsProperties(props string) (url.Values, error) {
	rest, ok := strings.CutPrefix(props, "?")
	if !ok {
		return nil, fmt.Errorf("%w: no properties", ErrDPSTopic)
	}
	q, err := url.ParseQuery(rest)
	if err != nil {
		return nil, fmt.Errorf("%w: properties: %w", ErrDPSTopic, err)
	}
	return q, nil
}

// DPSRegisterRequest is the body of a register request (§5.4).
type DPSRegisterRequest struct {
	RegistrationID string          `json:"registrationId"`
	Payload        json.RawMessage `json:"payload,omitempty"`
}

// DPSOperation is the body of a 200 or 202 register or poll response.
type DPSOperation struct {
	OperationID       string                `json:"operationId"`
	Status            string                `json:"status"`
	RegistrationState *DPSRegistrationState `json:"registrationState,omitempty"`
}

// DPSRegistrationState is the registration as DPS reports it (§5.4).
// Times are RFC 3339 with 7 fractional digits, as the service writes them.
type DPSRegistrationState struct {
	RegistrationID         string          `json:"registrationId"`
	CreatedDateTimeUTC     string          `json:"createdDateTimeUtc,omitempty"`
	AssignedHub            string          `json:"assignedHub,omitempty"`
	DeviceID               string          `json:"deviceId,omitempty"`
	Status                 string          `json:"status"`
	Substatus              string          `json:"substatus,omitempty"`
	ErrorCode              int             `json:"errorCode,omitempty"`
	ErrorMessage           string          `json:"errorMessage,omitempty"`
	LastUpdatedDateTimeUTC string          `json:"lastUpdatedDateTimeUtc,omitempty"`
	ETag                   string          `json:"etag,omitempty"`
	X509                   *DPSX509        `json:"x509,omitempty"`
	Payload                json.RawMessage `json:"payload,omitempty"`
}

// DPSX509 is the attestation echo of an X.509 registration: empty for an
// individual enrollment, the group's id for a group.
type DPSX509 struct {
	EnrollmentGroupID string `json:"enrollmentGroupId,omitempty"`
}

// DPSError is the JSON body of a DPS error response (§5.4), e.g.
// {"errorCode":401002,"trackingId":"…","message":"Unauthorized","timestampUtc":"…"}.
type DPSError struct {
	ErrorCode    int    `json:"errorCode"`
	TrackingID   string `json:"trackingId"`
	Message      string `json:"message"`
	TimestampUTC string `json:"timestampUtc,omitempty"`
}

// DPSTimeLayout is how DPS writes times: UTC, RFC 3339 with 7 fractional
// digits ("2023-02-23T23:42:29.8828674Z", §5.4).
const DPSTimeLayout = "2006-01-02T15:04:05.0000000Z"

// DPSTime formats t as DPS does (DPSTimeLayout).
func DPSTime(t time.Time) string { return t.UTC().Format(DPSTimeLayout) }
