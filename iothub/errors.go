package iothub

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// IoT Hub error codes used by the method API (§5.3). The HTTP status is the
// code divided by 1000.
const (
	CodeArgumentInvalid    = 400004
	CodeArgumentNull       = 400005
	CodeIotHubFormatError  = 400006
	CodeInvalidOperation   = 400003
	CodeUnauthorized       = 401002
	CodeQuotaExceeded      = 403002
	CodeDeviceNotFound     = 404001
	CodeModuleNotFound     = 404010
	CodeDeviceNotOnline    = 404103
	CodeMessageTooLarge    = 413001
	CodeThrottled          = 429001
	CodeServerError        = 500001
	CodeServiceUnavailable = 503001
	CodeGatewayTimeout     = 504101
	CodeMethodNotAllowed   = 405001
	// Twin and registry operations (fleet reference §2.3).
	CodeDeviceAlreadyExists = 409001
	CodeModuleAlreadyExists = 409301
	CodePreconditionFailed  = 412001
)

// errorNames maps codes to the iothub-errorcode header names (§5.3).
var errorNames = map[int]string{
	CodeArgumentInvalid:     "ArgumentInvalid",
	CodeArgumentNull:        "ArgumentNull",
	CodeIotHubFormatError:   "IotHubFormatError",
	CodeInvalidOperation:    "InvalidOperation",
	CodeUnauthorized:        "IotHubUnauthorizedAccess",
	CodeQuotaExceeded:       "IotHubQuotaExceeded",
	CodeDeviceNotFound:      "DeviceNotFound",
	CodeModuleNotFound:      "ModuleNotFound",
	CodeDeviceNotOnline:     "DeviceNotOnline",
	CodeMessageTooLarge:     "MessageTooLarge",
	CodeThrottled:           "ThrottlingException",
	CodeServerError:         "ServerError",
	CodeServiceUnavailable:  "ServiceUnavailable",
	CodeGatewayTimeout:      "GatewayTimeout",
	CodeMethodNotAllowed:    "MethodNotAllowed",
	CodeDeviceAlreadyExists: "DeviceAlreadyExists",
	CodeModuleAlreadyExists: "ModuleAlreadyExists",
	CodePreconditionFailed:  "PreconditionFailed",
}

// ErrorName returns the iothub-errorcode name of code, or "" if unknown.
func ErrorName(code int) string { return errorNames[code] }

// ErrorCodeHeader is the response header that names the error.
const ErrorCodeHeader = "iothub-errorcode"

// Error is an IoT Hub service error. It implements error; its message never
// contains credentials.
type Error struct {
	HTTPStatus int
	Code       int    // e.g. 404103; 0 when only a name was given (format B)
	Name       string // e.g. DeviceNotOnline
	Message    string
	TrackingID string
	Info       json.RawMessage // object, "{}" when empty
	Timestamp  time.Time
}

// NewError builds an error with the HTTP status and name derived from code.
// It is a constructor and never returns nil: it returns the concrete type so
// that the caller can fill in Info, TrackingID or Timestamp. Functions that
// may fail return it as an error (and a literal nil on success).
func NewError(code int, message string) *Error {
	return &Error{HTTPStatus: code / 1000, Code: code, Name: ErrorName(code), Message: message}
}

func (e *Error) Error() string {
	s := fmt.Sprintf("iothub: %d", e.HTTPStatus)
	if e.Code != 0 {
		s += " " + strconv.Itoa(e.Code)
	}
	if e.Name != "" {
		s += " " + e.Name
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.TrackingID != "" {
		s += " (trackingId " + e.TrackingID + ")"
	}
	return s
}

// innerError is the JSON document carried, as a string, in format A's Message.
type innerError struct {
	ErrorCode    json.RawMessage `json:"errorCode"`
	TrackingID   string          `json:"trackingId"`
	Message      string          `json:"message"`
	Info         json.RawMessage `json:"info"`
	TimestampUTC string          `json:"timestampUtc"`
}

type outerError struct {
	Message          string `json:"Message"`
	ExceptionMessage string `json:"ExceptionMessage"`
}

// Body renders the current (format A) error body: an outer object whose
// Message is itself a JSON document (§5.3).
func (e *Error) Body() []byte {
	info := e.Info
	if len(info) == 0 {
		info = json.RawMessage("{}")
	}
	ts := e.Timestamp
	if ts.IsZero() {
		ts = time.Now()
	}
	inner, _ := json.Marshal(innerError{
		ErrorCode:    json.RawMessage(strconv.Itoa(e.Code)),
		TrackingID:   e.TrackingID,
		Message:      e.Message,
		Info:         info,
		TimestampUTC: ts.UTC().Format("2006-01-02T15:04:05.0000000Z"),
	})
	out, _ := json.Marshal(outerError{Message: string(inner)})
	return out
}

// ParseError reads an error response in either body format (§5.3): format A
// (Message holds a JSON document with errorCode, trackingId, message, info,
// timestampUtc) or legacy format B ("ErrorCode:Name;text" with the tracking id
// in ExceptionMessage). headerName is the iothub-errorcode header, which may
// be empty. A body in neither format still yields an Error with the status
// and the body text (truncated) as message. It never returns nil.
func ParseError(httpStatus int, headerName string, body []byte) *Error {
	e := &Error{HTTPStatus: httpStatus, Name: headerName}
	var out outerError
	if json.Unmarshal(body, &out) != nil || out.Message == "" {
		e.Message = truncate(strings.TrimSpace(string(body)), 512)
		return e
	}
	var in innerError
	if json.Unmarshal([]byte(out.Message), &in) == nil && len(in.ErrorCode) > 0 {
		e.Code = parseCode(in.ErrorCode)
		e.TrackingID, e.Message, e.Info = in.TrackingID, in.Message, in.Info
		e.Timestamp, _ = time.Parse(time.RFC3339Nano, in.TimestampUTC)
		if e.Name == "" {
			e.Name = ErrorName(e.Code)
		}
		return e
	}
	return parseLegacyError(e, out)
}

func parseLegacyError(e *Error, out outerError) *Error {
	e.Message = out.Message
	if rest, ok := strings.CutPrefix(out.Message, "ErrorCode:"); ok {
		name, msg, _ := strings.Cut(rest, ";")
		e.Message = msg
		if e.Name == "" {
			e.Name = name
		}
		for code, n := range errorNames {
			if n == name {
				e.Code = code
			}
		}
	}
	e.TrackingID = strings.TrimSpace(strings.TrimPrefix(out.ExceptionMessage, "Tracking ID:"))
	return e
}

// parseCode accepts errorCode as a number or a numeric string (C# v2 does).
func parseCode(raw json.RawMessage) int {
	s := strings.Trim(string(raw), `"`)
	n, _ := strconv.Atoi(s)
	return n
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
