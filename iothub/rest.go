package iothub

import (
	"bytes"
	"encoding/json"
	"net/url"
	"strconv"
)

// Timeout bounds of a method invocation (§5.1).
const (
	DefaultResponseTimeout = 30
	MinResponseTimeout     = 5
	MaxResponseTimeout     = 300
	MaxConnectTimeout      = 300
)

// MethodRequest is the service REST body of an invocation (CloudToDeviceMethod,
// §5.1). Payload holds the payload's JSON bytes exactly as written; nil means
// null.
type MethodRequest struct {
	MethodName               string
	Payload                  json.RawMessage
	ResponseTimeoutInSeconds int
	ConnectTimeoutInSeconds  int
}

// MethodsPath is the REST path of the invocation route of a device or module,
// with IDs path-escaped (§5.1), without the query.
func MethodsPath(device, module string) string {
	p := "/twins/" + url.PathEscape(device)
	if module != "" {
		p += "/modules/" + url.PathEscape(module)
	}
	return p + "/methods"
}

// MethodsQuery is the query string every REST call carries.
const MethodsQuery = "api-version=" + APIVersion

// Encode renders the body with all four fields, as the Node SDK sends it, and
// the payload bytes verbatim (nil → null).
func (r MethodRequest) Encode() []byte {
	var b bytes.Buffer
	name, _ := json.Marshal(r.MethodName)
	b.WriteString(`{"methodName":`)
	b.Write(name)
	b.WriteString(`,"payload":`)
	b.Write(jsonOrNull(r.Payload))
	b.WriteString(`,"responseTimeoutInSeconds":`)
	b.WriteString(strconv.Itoa(r.ResponseTimeoutInSeconds))
	b.WriteString(`,"connectTimeoutInSeconds":`)
	b.WriteString(strconv.Itoa(r.ConnectTimeoutInSeconds))
	b.WriteByte('}')
	return b.Bytes()
}

// DecodeMethodRequest validates a REST body the way the hub does: a JSON
// object; methodName a valid method name; payload any JSON value of at most
// MaxPayloadBytes (absent → null); responseTimeoutInSeconds 5..300 (default
// 30); connectTimeoutInSeconds 0..300 (default 0). A failure's error is an
// *Error (errors.As) with the hub's code: 400004 ArgumentInvalid, 400005
// ArgumentNull, 400006 IotHubFormatError or 413001 MessageTooLarge.
func DecodeMethodRequest(body []byte) (MethodRequest, error) {
	var raw struct {
		MethodName      *string         `json:"methodName"`
		Payload         json.RawMessage `json:"payload"`
		ResponseTimeout *json.Number    `json:"responseTimeoutInSeconds"`
		ConnectTimeout  *json.Number    `json:"connectTimeoutInSeconds"`
	}
	r := MethodRequest{ResponseTimeoutInSeconds: DefaultResponseTimeout}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil || dec.More() {
		return r, NewError(CodeIotHubFormatError, "The request body is not a valid JSON object of a method invocation.")
	}
	if raw.MethodName == nil {
		return r, NewError(CodeArgumentNull, "methodName is required.")
	}
	if !ValidMethodName(*raw.MethodName) {
		return r, NewError(CodeArgumentInvalid, "methodName is not a valid method name.")
	}
	r.MethodName = *raw.MethodName
	if len(raw.Payload) > MaxPayloadBytes {
		return r, NewError(CodeMessageTooLarge, "The method payload exceeds the maximum size of 128 KB.")
	}
	if len(raw.Payload) > 0 && !bytes.Equal(raw.Payload, []byte("null")) {
		r.Payload = raw.Payload
	}
	var err error
	if r.ResponseTimeoutInSeconds, err = timeoutField("responseTimeoutInSeconds", raw.ResponseTimeout, DefaultResponseTimeout, MinResponseTimeout, MaxResponseTimeout); err != nil {
		return r, err
	}
	if r.ConnectTimeoutInSeconds, err = timeoutField("connectTimeoutInSeconds", raw.ConnectTimeout, 0, 0, MaxConnectTimeout); err != nil {
		return r, err
	}
	return r, nil
}

// timeoutField reads an optional integer field in [lo, hi]; absent is def.
// A failure's error is an *Error with code 400004 ArgumentInvalid.
func timeoutField(name string, n *json.Number, def, lo, hi int) (int, error) {
	if n == nil {
		return def, nil
	}
	v, err := strconv.Atoi(n.String())
	if err != nil || v < lo || v > hi {
		return 0, NewError(CodeArgumentInvalid, name+" must be an integer from "+strconv.Itoa(lo)+" to "+strconv.Itoa(hi)+".")
	}
	return v, nil
}

// MethodResult is the success body of an invocation (§5.2).
type MethodResult struct {
	Status  int             `json:"status"`
	Payload json.RawMessage `json:"payload"`
}

// EncodeMethodResult renders {"status":N,"payload":P} with the device's
// payload bytes spliced verbatim; an empty payload becomes null.
func EncodeMethodResult(status int, payload []byte) []byte {
	b := make([]byte, 0, len(payload)+32)
	b = append(b, `{"status":`...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, `,"payload":`...)
	b = append(b, jsonOrNull(payload)...)
	return append(b, '}')
}

func jsonOrNull(p []byte) []byte {
	if len(bytes.TrimSpace(p)) == 0 {
		return []byte("null")
	}
	return p
}
