package localhub

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/methodd/methodd/internal/twindoc"
	"github.com/methodd/methodd/iothub"
)

// defaultMaxExecution is a job's maxExecutionTimeInSeconds when the
// request has none (the Node SDK's callback overloads send the same).
const defaultMaxExecution = 3600

// createRequest is the body of PUT /jobs/v2/{jobId} (§4.1). Unknown
// members are ignored.
type createRequest struct {
	JobID          *string         `json:"jobId"`
	Type           string          `json:"type"`
	Method         json.RawMessage `json:"cloudToDeviceMethod"`
	UpdateTwin     json.RawMessage `json:"updateTwin"`
	QueryCondition *string         `json:"queryCondition"`
	StartTime      *string         `json:"startTime"`
	MaxExecution   *json.Number    `json:"maxExecutionTimeInSeconds"`
}

// newJob validates a create request for job id and returns the job, not
// yet registered. Every refusal is an *iothub.Error: 400004
// ArgumentInvalid (bad id, start time, max execution time, condition,
// method fields, twin patch), 400 GenericBadRequest (unknown type, as the
// real hub answers), 400006 (not a JSON object), 413001 (method payload
// over 128 KB).
func (h *Hub) newJob(id string, body []byte) (*job, error) {
	if !validJobID(id) {
		return nil, argInvalid("The job id must be 1 to 64 characters of US-ASCII letters, digits and '-'.")
	}
	var r createRequest
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	if err := d.Decode(&r); err != nil || d.More() {
		return nil, iothub.NewError(iothub.CodeIotHubFormatError, "The request body is not a valid JSON object of a job.")
	}
	if r.JobID != nil && *r.JobID != id {
		return nil, argInvalid("The jobId of the body does not match the job id of the path.")
	}
	now := h.opts.Now().UTC()
	st := jobState{JobID: id, Type: r.Type, Status: jobQueued, CreatedTime: now, Devices: []*deviceRecord{}}
	var err error
	if st.StartTime, err = startTime(r.StartTime, now); err != nil {
		return nil, err
	}
	if st.MaxExecution, err = maxExecution(r.MaxExecution); err != nil {
		return nil, err
	}
	if r.QueryCondition == nil || *r.QueryCondition == "" {
		return nil, argInvalid("queryCondition is required (\"*\" selects every device).")
	}
	st.QueryCondition = *r.QueryCondition
	cond, err := parseQueryCondition(st.QueryCondition)
	if err != nil {
		return nil, argInvalid("queryCondition: " + err.Error())
	}
	switch r.Type {
	case jobTypeMethod:
		st.Method, err = jobMethodOf(r.Method)
	case jobTypeTwin:
		st.UpdateTwin, err = jobTwinPatch(r.UpdateTwin, now)
	default:
		return nil, &iothub.Error{HTTPStatus: 400, Name: "GenericBadRequest",
			Message: "BadRequest: type must be scheduleDeviceMethod or scheduleUpdateTwin."}
	}
	if err != nil {
		return nil, err
	}
	return &job{cond: cond, cancelled: make(chan struct{}), state: st}, nil
}

func argInvalid(msg string) error { return iothub.NewError(iothub.CodeArgumentInvalid, msg) }

// startTime reads startTime: RFC 3339 (the SDKs send
// 2026-01-01T00:00:00.000Z); null, absent or "" mean now.
func startTime(s *string, now time.Time) (time.Time, error) {
	if s == nil || *s == "" {
		return now, nil
	}
	t, err := time.Parse(time.RFC3339Nano, *s)
	if err != nil {
		return time.Time{}, argInvalid("startTime " + strconv.Quote(*s) + " is not an ISO-8601 (RFC 3339) time.")
	}
	return t.UTC(), nil
}

// maxExecution reads maxExecutionTimeInSeconds: a positive integer of at
// most 2^31-1; null or absent mean defaultMaxExecution.
func maxExecution(n *json.Number) (int, error) {
	if n == nil {
		return defaultMaxExecution, nil
	}
	v, err := strconv.ParseInt(n.String(), 10, 32)
	if err != nil || v < 1 {
		return 0, argInvalid("maxExecutionTimeInSeconds must be a positive integer.")
	}
	return int(v), nil
}

// jobMethodOf validates cloudToDeviceMethod as the methods API validates
// an invocation (methodName, payload ≤ 128 KB, responseTimeoutInSeconds
// 5..300 default 30, connectTimeoutInSeconds 0..300 default 0).
func jobMethodOf(raw json.RawMessage) (*jobMethod, error) {
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, argInvalid("cloudToDeviceMethod is required for a scheduleDeviceMethod job.")
	}
	req, err := iothub.DecodeMethodRequest(raw)
	if err != nil {
		var he *iothub.Error
		if errors.As(err, &he) && he.Code != iothub.CodeMessageTooLarge {
			return nil, argInvalid("cloudToDeviceMethod: " + he.Message)
		}
		return nil, err
	}
	m := &jobMethod{MethodName: req.MethodName, Payload: json.RawMessage("null"),
		ResponseTimeoutInSeconds: req.ResponseTimeoutInSeconds, ConnectTimeoutInSeconds: req.ConnectTimeoutInSeconds}
	if len(req.Payload) > 0 {
		var c bytes.Buffer
		if err := json.Compact(&c, req.Payload); err == nil {
			m.Payload = c.Bytes()
		}
	}
	return m, nil
}

// jobTwinPatch validates updateTwin: an object whose tags and
// properties.desired the twin rules accept (tried on an empty twin) and
// whose etag, when present, is a string.
func jobTwinPatch(raw json.RawMessage, now time.Time) (json.RawMessage, error) {
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, argInvalid("updateTwin is required for a scheduleUpdateTwin job.")
	}
	var head struct {
		ETag *json.RawMessage `json:"etag"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return nil, argInvalid("updateTwin is not a JSON object.")
	}
	if head.ETag != nil {
		var s string
		if json.Unmarshal(*head.ETag, &s) != nil {
			return nil, argInvalid("updateTwin.etag must be a string.")
		}
	}
	if _, err := twindoc.New(now).Update(raw, false, now); err != nil {
		if he, ok := errors.AsType[*iothub.Error](err); ok {
			return nil, argInvalid("updateTwin: " + he.Message)
		}
		return nil, argInvalid("updateTwin: " + err.Error())
	}
	var c bytes.Buffer
	if err := json.Compact(&c, raw); err != nil {
		return nil, argInvalid("updateTwin is not valid JSON.")
	}
	return c.Bytes(), nil
}
