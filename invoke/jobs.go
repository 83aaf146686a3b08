package invoke

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/methodd/methodd/iothub"
)

// Job types on the wire (fleet reference §4.1).
const (
	JobTypeMethod = "scheduleDeviceMethod"
	JobTypeTwin   = "scheduleUpdateTwin"
)

// Job statuses on the wire (fleet reference §4.2): note "cancelled" with
// two l's; the per-device records spell it "canceled".
const (
	JobQueued    = "queued"
	JobScheduled = "scheduled"
	JobRunning   = "running"
	JobCompleted = "completed"
	JobFailed    = "failed"
	JobCancelled = "cancelled"
	JobUnknown   = "unknown"
)

// JobRequestTimeout bounds one jobs or query request (each attempt), within
// the caller's context: the hub answers them at once.
const JobRequestTimeout = 30 * time.Second

// MaxJobIDLen is the longest job id the hub accepts.
const MaxJobIDLen = 64

// jobsPageSize is the page size asked of the job list and of the records
// query: a job or a record may carry a method payload of up to 128 KB, so
// a page stays under maxJobPageBytes.
const jobsPageSize = 100

// maxJobPageBytes bounds what is read of one page of the job list.
const maxJobPageBytes = 64 << 20

// ErrJob is wrapped when a job request is refused before sending: an
// invalid job id, method name, payload or condition.
var ErrJob = errors.New("invalid job")

// ErrMalformedJob is wrapped when the hub answers 200 with a body that is
// not what the jobs API promises.
var ErrMalformedJob = errors.New("hub answered with a malformed job document")

// JobStatistics are a job's per-device counts (deviceJobStatistics).
type JobStatistics struct {
	DeviceCount    int `json:"deviceCount"`
	FailedCount    int `json:"failedCount"`
	SucceededCount int `json:"succeededCount"`
	RunningCount   int `json:"runningCount"`
	PendingCount   int `json:"pendingCount"`
}

// Job is a job as the hub describes it (JobResponse, fleet reference §4.2).
// Times are kept as the hub wrote them (ISO 8601).
type Job struct {
	JobID          string         `json:"jobId"`
	Type           string         `json:"type"`
	Status         string         `json:"status"`
	QueryCondition string         `json:"queryCondition,omitempty"`
	CreatedTime    string         `json:"createdTime,omitempty"`
	StartTime      string         `json:"startTime,omitempty"`
	EndTime        string         `json:"endTime,omitempty"`
	MaxExecution   int            `json:"maxExecutionTimeInSeconds,omitempty"`
	FailureReason  string         `json:"failureReason,omitempty"`
	StatusMessage  string         `json:"statusMessage,omitempty"`
	Statistics     *JobStatistics `json:"deviceJobStatistics,omitempty"`
	// Raw is the hub's JSON document of the job, byte for byte.
	Raw json.RawMessage `json:"-"`
}

// Done reports whether the job has ended: completed, failed or cancelled.
func (j Job) Done() bool {
	return j.Status == JobCompleted || j.Status == JobFailed || j.Status == JobCancelled
}

// ValidJobID reports whether id is a job id the hub accepts: 1..64
// US-ASCII letters, digits and '-'.
func ValidJobID(id string) bool {
	if id == "" || len(id) > MaxJobIDLen {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

// NewJobID returns a fresh job id, "methodd-YYYYMMDD-HHMMSS-" and 8 random
// hex digits (32 characters, sortable by creation time, valid per
// ValidJobID).
func NewJobID(now time.Time) string {
	var b [4]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return "methodd-" + now.UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
}

// CreateMethodJob schedules method on the devices that condition (the
// WHERE body of a query, e.g. "tags.site = 'a'") selects, with PUT
// /jobs/v2/{id}, and returns the hub's answer (status "queued"). payload
// is sent verbatim (nil: null); responseTimeout is rounded down to whole
// seconds (0: the hub's 30 s); a zero start means now (startTime null).
// An invalid id, method name, payload or empty condition wraps ErrJob and
// sends nothing. A non-200 answer is a *iothub.Error (409 for a duplicate
// id); throttled (429) and unavailable (503) answers are retried per the
// client's RetryPolicy.
func (c *Client) CreateMethodJob(ctx context.Context, id, condition, method string, payload json.RawMessage, responseTimeout time.Duration, start time.Time) (Job, error) {
	if !iothub.ValidMethodName(method) {
		return Job{}, fmt.Errorf("create job %s: %w: %q is not a valid method name", id, ErrJob, method)
	}
	if len(payload) > iothub.MaxPayloadBytes || (len(payload) > 0 && !json.Valid(payload)) {
		return Job{}, fmt.Errorf("create job %s: %w: the payload is not JSON of at most %d bytes", id, ErrJob, iothub.MaxPayloadBytes)
	}
	secs := int(responseTimeout / time.Second)
	if secs == 0 {
		secs = iothub.DefaultResponseTimeout
	}
	name, _ := json.Marshal(method)
	m := `{"methodName":` + string(name) + `,"payload":` + string(compactOrNull(payload)) +
		`,"responseTimeoutInSeconds":` + strconv.Itoa(secs) + `}`
	return c.createJob(ctx, id, JobTypeMethod, "cloudToDeviceMethod", []byte(m), condition, start)
}

// CreateTwinJob schedules a twin update on the devices condition selects
// (type scheduleUpdateTwin). patch is the updateTwin object sent verbatim,
// e.g. {"etag":"*","tags":{…},"properties":{"desired":{…}}}; it must be a
// JSON object. Everything else is as for CreateMethodJob.
func (c *Client) CreateTwinJob(ctx context.Context, id, condition string, patch []byte, start time.Time) (Job, error) {
	if !isJSONObject(patch) {
		return Job{}, fmt.Errorf("create job %s: %w: the twin update is not a JSON object", id, ErrJob)
	}
	var b bytes.Buffer
	_ = json.Compact(&b, patch) // valid: checked above
	return c.createJob(ctx, id, JobTypeTwin, "updateTwin", b.Bytes(), condition, start)
}

// createJob renders and sends the body of PUT /jobs/v2/{id}, in the Node
// SDK's key order, startTime as toISOString() or null.
func (c *Client) createJob(ctx context.Context, id, typ, key string, part []byte, condition string, start time.Time) (Job, error) {
	if !ValidJobID(id) {
		return Job{}, fmt.Errorf("create job: %w: id %q: want 1..%d letters, digits and '-'", ErrJob, id, MaxJobIDLen)
	}
	if strings.TrimSpace(condition) == "" {
		return Job{}, fmt.Errorf("create job %s: %w: empty query condition", id, ErrJob)
	}
	idJSON, _ := json.Marshal(id)
	condJSON, _ := json.Marshal(condition)
	startJSON := "null"
	if !start.IsZero() {
		startJSON = `"` + start.UTC().Format("2006-01-02T15:04:05.000Z") + `"`
	}
	body := `{"jobId":` + string(idJSON) + `,"type":"` + typ + `","` + key + `":` + string(part) +
		`,"startTime":` + startJSON + `,"queryCondition":` + string(condJSON) + `}`
	job, err := c.jobRequest(ctx, outgoing{method: http.MethodPut, url: c.jobURL(id, ""), body: []byte(body)})
	if err != nil {
		return job, fmt.Errorf("create job %s: %w", id, err)
	}
	return job, nil
}

// GetJob returns job id (GET /jobs/v2/{id}). An unknown id is a
// *iothub.Error with HTTPStatus 404 (some hubs answer 200 with status
// "unknown" instead; that is returned as a Job). Errors as CreateMethodJob.
func (c *Client) GetJob(ctx context.Context, id string) (Job, error) {
	if !ValidJobID(id) {
		return Job{}, fmt.Errorf("get job: %w: id %q", ErrJob, id)
	}
	job, err := c.jobRequest(ctx, outgoing{method: http.MethodGet, url: c.jobURL(id, "")})
	if err != nil {
		return job, fmt.Errorf("get job %s: %w", id, err)
	}
	return job, nil
}

// CancelJob cancels job id (POST /jobs/v2/{id}/cancel, no body) and
// returns the job as the hub answers (status "cancelled"). Cancelling a
// job that has ended is answered as the hub decides. Errors as GetJob.
func (c *Client) CancelJob(ctx context.Context, id string) (Job, error) {
	if !ValidJobID(id) {
		return Job{}, fmt.Errorf("cancel job: %w: id %q", ErrJob, id)
	}
	job, err := c.jobRequest(ctx, outgoing{method: http.MethodPost, url: c.jobURL(id, "/cancel")})
	if err != nil {
		return job, fmt.Errorf("cancel job %s: %w", id, err)
	}
	return job, nil
}

// ListJobs returns the jobs of the hub (GET /jobs/v2/query), all pages,
// filtered by jobType and jobStatus when they are not empty. Errors as
// GetJob; a page that is not a JSON array of jobs wraps ErrMalformedJob.
func (c *Client) ListJobs(ctx context.Context, jobType, jobStatus string) ([]Job, error) {
	q := url.Values{"api-version": {iothub.APIVersion}}
	if jobStatus != "" {
		q.Set("jobStatus", jobStatus)
	}
	if jobType != "" {
		q.Set("jobType", jobType)
	}
	o := outgoing{method: http.MethodGet, url: c.base + "/jobs/v2/query?" + q.Encode()}
	var jobs []Job
	err := c.pages(ctx, o, func(item json.RawMessage) error {
		j, err := decodeJob(item)
		jobs = append(jobs, j)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	return jobs, nil
}

// DeviceJob is one device's record of a job (fleet reference §4.5).
type DeviceJob struct {
	DeviceID     string            `json:"deviceId"`
	ModuleID     string            `json:"moduleId,omitempty"`
	JobID        string            `json:"jobId"`
	JobType      string            `json:"jobType"`
	Status       string            `json:"status"` // pending, scheduled, running, completed, failed, canceled
	StartTimeUTC string            `json:"startTimeUtc,omitempty"`
	EndTimeUTC   string            `json:"endTimeUtc,omitempty"`
	Result       *DeviceJobOutcome `json:"outcome,omitempty"`
	Error        *DeviceJobError   `json:"error,omitempty"`
}

// DeviceJobOutcome is a record's outcome: the device's method response,
// nil for twin-update jobs.
type DeviceJobOutcome struct {
	DeviceMethodResponse *iothub.MethodResult `json:"deviceMethodResponse"`
}

// DeviceJobError is a record's failure as the hub wrote it.
type DeviceJobError struct {
	Code        json.RawMessage `json:"code"` // a name ("DeviceNotOnline") or a number
	Description string          `json:"description"`
}

// Finished reports whether the device's part of the job has ended.
func (d DeviceJob) Finished() bool {
	return d.Status == JobCompleted || d.Status == JobFailed || d.Status == "canceled"
}

// JobRecords returns the per-device records of job id, sorted by device,
// through Query with SELECT * FROM devices.jobs WHERE devices.jobs.jobId =
// 'id' (all pages). Errors are Query's; an item without a deviceId wraps
// ErrMalformedJob; an invalid id wraps ErrJob and sends nothing.
func (c *Client) JobRecords(ctx context.Context, id string) ([]DeviceJob, error) {
	if !ValidJobID(id) {
		return nil, fmt.Errorf("job records: %w: id %q", ErrJob, id)
	}
	sql := "SELECT * FROM devices.jobs WHERE devices.jobs.jobId = '" + id + "'" // a valid id needs no quoting
	var recs []DeviceJob
	err := c.Query(ctx, sql, jobsPageSize, func(item json.RawMessage) error {
		var d DeviceJob
		if err := json.Unmarshal(item, &d); err != nil || d.DeviceID == "" {
			return fmt.Errorf("%w: a device record without deviceId", ErrMalformedJob)
		}
		recs = append(recs, d)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("job records %s: %w", id, err)
	}
	slices.SortStableFunc(recs, func(a, b DeviceJob) int {
		return strings.Compare(a.DeviceID+"/"+a.ModuleID, b.DeviceID+"/"+b.ModuleID)
	})
	return recs, nil
}

// Outcome renders the record as the fan-out's Outcome, so that its Line
// and Summary are those of `invoke --devices-file`: a method response is a
// Result (a completed twin update, which has none, is status 200 with a
// null payload); a failure is a *iothub.Error whose Code is the hub's
// number for the record's error name when known (DeviceNotOnline is
// 404103, so it counts as unreachable); a record that is not completed or
// has neither is an error naming its status. Latency is the record's end
// minus its start when both are readable (Attempts is then 1).
func (d DeviceJob) Outcome() Outcome {
	o := Outcome{Target: Target{Device: d.DeviceID, Module: d.ModuleID}}
	start, err1 := parseJobTime(d.StartTimeUTC)
	end, err2 := parseJobTime(d.EndTimeUTC)
	if err1 == nil && err2 == nil && !end.Before(start) {
		o.Latency, o.Attempts = end.Sub(start), 1
	}
	switch {
	case d.Result != nil && d.Result.DeviceMethodResponse != nil:
		r := d.Result.DeviceMethodResponse
		p := r.Payload
		if len(p) == 0 {
			p = json.RawMessage("null")
		}
		o.Result = Result{Status: r.Status, Payload: p}
	case d.Error != nil:
		o.Err = recordError(d.Error.Code, d.Error.Description)
	case d.Status == JobCompleted && d.JobType == JobTypeTwin:
		o.Result = Result{Status: http.StatusOK, Payload: json.RawMessage("null")}
	default:
		o.Err = fmt.Errorf("device job status %s without a result", strconv.Quote(d.Status))
	}
	return o
}

// knownRecordCodes are the codes whose names a record's error may carry.
var knownRecordCodes = [...]int{
	iothub.CodeDeviceNotFound, iothub.CodeModuleNotFound, iothub.CodeDeviceNotOnline,
	iothub.CodeGatewayTimeout, iothub.CodeThrottled, iothub.CodeServerError,
	iothub.CodeServiceUnavailable, iothub.CodeArgumentInvalid, iothub.CodeMessageTooLarge,
}

// recordError turns a record's {"code","description"} into a *iothub.Error.
func recordError(raw json.RawMessage, description string) *iothub.Error {
	s := strings.Trim(string(raw), `"`)
	e := &iothub.Error{Name: s, Message: description}
	if n, err := strconv.Atoi(s); err == nil {
		e.Code, e.Name = n, iothub.ErrorName(n)
	}
	for _, code := range knownRecordCodes {
		if e.Code == 0 && iothub.ErrorName(code) == s {
			e.Code = code
		}
	}
	e.HTTPStatus = e.Code / 1000
	if e.Message == "" {
		e.Message = s
	}
	if e.Code == 0 && s != "" && e.Message != s {
		e.Message = s + ": " + e.Message
	}
	return e
}

// parseJobTime reads a record's time, with or without a zone (the docs
// show both; no zone is UTC).
func parseJobTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	return time.Parse("2006-01-02T15:04:05.999999999", s)
}

// jobURL is the REST URL of job id with an optional suffix ("/cancel").
func (c *Client) jobURL(id, suffix string) string {
	return c.base + "/jobs/v2/" + url.PathEscape(id) + suffix + "?" + iothub.MethodsQuery
}

// jobRequest makes o with retries and decodes the job the hub answered.
func (c *Client) jobRequest(ctx context.Context, o outgoing) (Job, error) {
	o.limit = JobRequestTimeout
	var raw []byte
	_, err := c.withRetries(ctx, func() (retryAfter time.Duration, err error) {
		raw, retryAfter, err = c.send(ctx, o)
		return retryAfter, err
	})
	if err != nil {
		return Job{}, err
	}
	return decodeJob(raw)
}

// decodeJob parses a JobResponse, keeping its bytes in Raw.
func decodeJob(raw []byte) (Job, error) {
	var j Job
	if !isJSONObject(raw) || json.Unmarshal(raw, &j) != nil || j.JobID == "" {
		return Job{Raw: raw}, ErrMalformedJob
	}
	j.Raw = raw
	return j, nil
}

// pages lists o's items with the query API's paging, jobsPageSize at a
// time (see paginate).
func (c *Client) pages(ctx context.Context, o outgoing, each func(json.RawMessage) error) error {
	o.limit, o.maxBody = JobRequestTimeout, maxJobPageBytes
	return c.paginate(ctx, o, jobsPageSize, ErrMalformedJob, each)
}
