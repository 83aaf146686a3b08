package invoke

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/methodd/methodd/iothub"
)

// Kind classifies how a call ended; the command line maps kinds to exit codes.
type Kind int

// The kinds of outcome, from best to worst.
const (
	KindOK          Kind = iota // the device replied 2xx
	KindDeviceError             // the device replied another status
	KindUnreachable             // device or module not found, or not online (404001, 404010, 404103)
	KindTimeout                 // the device did not answer in time (504101)
	KindError                   // any other hub, auth, network or local error
)

// String names the kind as the summary line prints it.
func (k Kind) String() string {
	switch k {
	case KindOK:
		return "ok"
	case KindDeviceError:
		return "device-error"
	case KindUnreachable:
		return "unreachable"
	case KindTimeout:
		return "timeout"
	default:
		return "error"
	}
}

// KindOf classifies the result and error of one Invoke.
func KindOf(r Result, err error) Kind {
	if err == nil {
		if r.Status >= 200 && r.Status < 300 {
			return KindOK
		}
		return KindDeviceError
	}
	if he, ok := errors.AsType[*iothub.Error](err); ok {
		switch he.Code {
		case iothub.CodeDeviceNotFound, iothub.CodeModuleNotFound, iothub.CodeDeviceNotOnline:
			return KindUnreachable
		case iothub.CodeGatewayTimeout:
			return KindTimeout
		}
		if he.Code == 0 && he.HTTPStatus == http.StatusGatewayTimeout && he.Name == iothub.ErrorName(iothub.CodeGatewayTimeout) {
			return KindTimeout
		}
	}
	return KindError
}

// Outcome is the end of one call of a fan-out.
type Outcome struct {
	Target   Target
	Result   Result // meaningful when Err is nil
	Err      error
	Latency  time.Duration // from the first attempt to the answer, back-offs included
	Attempts int           // HTTP requests made; 0 if the call never started
}

// Kind classifies the outcome.
func (o Outcome) Kind() Kind { return KindOf(o.Result, o.Err) }

// MarshalJSON implements json.Marshaler with Line's document (which
// encoding/json then compacts).
func (o Outcome) MarshalJSON() ([]byte, error) { return o.Line(), nil }

// Line renders the outcome as one line of `methodd invoke --devices-file`
// output, without the newline: {"device":D,"status":N,"payload":P} with the
// payload bytes verbatim, or {"device":D,"error":{"code":C,"message":M}}
// where C is the hub's errorCode (0 when the hub gave none: network and
// local errors) and M the error text; "trackingId" is added when the hub
// sent one. D is "device" or "device/module". A payload that spans lines is
// compacted.
func (o Outcome) Line() []byte {
	dev, _ := json.Marshal(o.Target.String())
	b := append([]byte(`{"device":`), dev...)
	if o.Err == nil {
		b = append(b, `,"status":`...)
		b = strconv.AppendInt(b, int64(o.Result.Status), 10)
		b = append(b, `,"payload":`...)
		b = append(b, compactOrNull(o.Result.Payload)...)
		return append(b, '}')
	}
	e := struct {
		Code       int    `json:"code"`
		Message    string `json:"message"`
		TrackingID string `json:"trackingId,omitempty"`
	}{Message: o.Err.Error()}
	if he, ok := errors.AsType[*iothub.Error](o.Err); ok {
		e.Code, e.Message, e.TrackingID = he.Code, he.Message, he.TrackingID
		if e.Message == "" {
			e.Message = he.Error()
		}
	}
	eb, _ := json.Marshal(e) // strings and an int: cannot fail
	b = append(b, `,"error":`...)
	b = append(b, eb...)
	return append(b, '}')
}

// compactOrNull keeps valid JSON bytes as they are unless they span lines
// (an outcome is one line), and turns an empty payload into null.
func compactOrNull(p json.RawMessage) []byte {
	if len(p) == 0 {
		return []byte("null")
	}
	for _, c := range p {
		if c == '\n' || c == '\r' {
			var out bytes.Buffer
			if json.Compact(&out, p) == nil {
				return out.Bytes()
			}
			return p
		}
	}
	return p
}
