package localhub

import (
	"encoding/json"
	"time"
)

// wireTime is how job documents render times: UTC with 7 fractional
// digits, as real hubs do; the zero time is 0001-01-01T00:00:00Z.
func wireTime(t time.Time) string {
	if t.IsZero() {
		return "0001-01-01T00:00:00Z"
	}
	return t.UTC().Format("2006-01-02T15:04:05.0000000Z")
}

// jobResponse is the JobResponse of GET, cancel and the list (§4.2).
type jobResponse struct {
	JobID          string          `json:"jobId"`
	QueryCondition string          `json:"queryCondition"`
	CreatedTime    string          `json:"createdTime"`
	StartTime      string          `json:"startTime"`
	EndTime        string          `json:"endTime,omitempty"`
	MaxExecution   int             `json:"maxExecutionTimeInSeconds"`
	Type           string          `json:"type"`
	Method         *jobMethod      `json:"cloudToDeviceMethod,omitempty"`
	UpdateTwin     json.RawMessage `json:"updateTwin,omitempty"`
	Status         string          `json:"status"`
	FailureReason  string          `json:"failureReason,omitempty"`
	Statistics     jobStatistics   `json:"deviceJobStatistics"`
}

// jobStatistics counts a job's devices; the four counts always add up to
// deviceCount: pending = not started, running = in flight, succeeded =
// completed (the device answered, whatever its status), failed = failed
// or canceled.
type jobStatistics struct {
	DeviceCount    int `json:"deviceCount"`
	FailedCount    int `json:"failedCount"`
	SucceededCount int `json:"succeededCount"`
	RunningCount   int `json:"runningCount"`
	PendingCount   int `json:"pendingCount"`
}

// response renders j's JobResponse.
func (j *job) response() jobResponse {
	j.mu.Lock()
	defer j.mu.Unlock()
	st := &j.state
	r := jobResponse{
		JobID: st.JobID, QueryCondition: st.QueryCondition, CreatedTime: wireTime(st.CreatedTime),
		StartTime: wireTime(st.StartTime), MaxExecution: st.MaxExecution, Type: st.Type,
		Method: st.Method, UpdateTwin: st.UpdateTwin, Status: st.Status, FailureReason: st.FailureReason,
	}
	if !st.EndTime.IsZero() {
		r.EndTime = wireTime(st.EndTime)
	}
	r.Statistics.DeviceCount = len(st.Devices)
	for _, d := range st.Devices {
		switch d.Status {
		case devicePending:
			r.Statistics.PendingCount++
		case deviceRunning:
			r.Statistics.RunningCount++
		case deviceCompleted:
			r.Statistics.SucceededCount++
		default:
			r.Statistics.FailedCount++
		}
	}
	return r
}

// deviceJob is one device's record as FROM devices.jobs returns it (§4.5).
type deviceJob struct {
	DeviceID    string          `json:"deviceId"`
	JobID       string          `json:"jobId"`
	JobType     string          `json:"jobType"`
	Status      string          `json:"status"`
	StartTime   string          `json:"startTimeUtc"`
	EndTime     string          `json:"endTimeUtc"`
	Created     string          `json:"createdDateTimeUtc"`
	LastUpdated string          `json:"lastUpdatedDateTimeUtc"`
	Outcome     *deviceOutcome  `json:"outcome,omitempty"`
	Error       *deviceJobError `json:"error,omitempty"`
}

// deviceOutcome is a record's outcome: the device's method reply, null
// for a twin update.
type deviceOutcome struct {
	DeviceMethodResponse *methodOutcome `json:"deviceMethodResponse"`
}

// deviceJobs renders j's device records.
func (j *job) deviceJobs() []deviceJob {
	j.mu.Lock()
	defer j.mu.Unlock()
	out := make([]deviceJob, len(j.state.Devices))
	for i, d := range j.state.Devices {
		out[i] = deviceJob{
			DeviceID: d.DeviceID, JobID: j.state.JobID, JobType: j.state.Type, Status: d.Status,
			StartTime: wireTime(d.Start), EndTime: wireTime(d.End),
			Created: wireTime(d.Created), LastUpdated: wireTime(d.LastUpdated),
			Error: d.Error,
		}
		if d.Status == deviceCompleted {
			out[i].Outcome = &deviceOutcome{DeviceMethodResponse: d.Response}
		}
	}
	return out
}
