package localhub

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/methodd/methodd/internal/logkey"
	"github.com/methodd/methodd/internal/twinquery"
	"github.com/methodd/methodd/iothub"
)

// jobsDir is the state-directory folder of jobs v2: one file per job,
// "<jobId>.json", holding the job and its per-device records. It is
// written atomically at every change of the job's status and, while the
// job runs, at most once per jobPersistEvery (not once per device: a
// 10,000-device job would rewrite a 3 MB file 10,000 times).
const jobsDir = "jobs"

// jobPersistEvery is how often a running job's file is rewritten when
// some device record changed.
const jobPersistEvery = time.Second

// Job statuses (fleet reference §4.2; "cancelled" with two l).
const (
	jobQueued    = "queued"
	jobScheduled = "scheduled"
	jobRunning   = "running"
	jobCompleted = "completed"
	jobFailed    = "failed"
	jobCancelled = "cancelled"
)

// Per-device statuses (§4.5; "canceled" with one l).
const (
	devicePending   = "pending"
	deviceRunning   = "running"
	deviceCompleted = "completed"
	deviceFailed    = "failed"
	deviceCanceled  = "canceled"
)

// Job types (§4.1).
const (
	jobTypeMethod = "scheduleDeviceMethod"
	jobTypeTwin   = "scheduleUpdateTwin"
)

// restartReason is the error of a device, and the failure reason of a job,
// that was running when the hub stopped.
const restartReason = "The hub restarted while the job was running."

// jobState is a job as its file holds it. Times are UTC; zero = not yet.
type jobState struct {
	JobID          string          `json:"jobId"`
	Type           string          `json:"type"`
	Status         string          `json:"status"`
	QueryCondition string          `json:"queryCondition"`
	CreatedTime    time.Time       `json:"createdTime"`
	StartTime      time.Time       `json:"startTime"` // when it is due
	RunTime        time.Time       `json:"runTime"`   // when it began to run
	EndTime        time.Time       `json:"endTime"`   // when it ended
	MaxExecution   int             `json:"maxExecutionTimeInSeconds"`
	Method         *jobMethod      `json:"cloudToDeviceMethod,omitempty"`
	UpdateTwin     json.RawMessage `json:"updateTwin,omitempty"`
	FailureReason  string          `json:"failureReason,omitempty"`
	Devices        []*deviceRecord `json:"devices"`
}

// jobMethod is a method job's cloudToDeviceMethod, defaults applied.
type jobMethod struct {
	MethodName               string          `json:"methodName"`
	Payload                  json.RawMessage `json:"payload"`
	ResponseTimeoutInSeconds int             `json:"responseTimeoutInSeconds"`
	ConnectTimeoutInSeconds  int             `json:"connectTimeoutInSeconds"`
}

// deviceRecord is one device's part of a job (§4.5).
type deviceRecord struct {
	DeviceID    string          `json:"deviceId"`
	Status      string          `json:"status"`
	Created     time.Time       `json:"created"`
	Start       time.Time       `json:"start"`
	End         time.Time       `json:"end"`
	LastUpdated time.Time       `json:"lastUpdated"`
	Response    *methodOutcome  `json:"response,omitempty"` // a method job's device reply
	Error       *deviceJobError `json:"error,omitempty"`
}

// methodOutcome is a device's method reply.
type methodOutcome struct {
	Status  int             `json:"status"`
	Payload json.RawMessage `json:"payload"`
}

// deviceJobError is why a device failed: code is the hub's error code
// ("404103"), description its message.
type deviceJobError struct {
	Code        string `json:"code"`
	Description string `json:"description"`
}

// finished reports whether a job status is final.
func finished(status string) bool {
	return status == jobCompleted || status == jobFailed || status == jobCancelled
}

// job is one job of the store; mu guards state, writeMu orders the writes
// of its file (a snapshot is marshalled and written under writeMu, so an
// older snapshot never overwrites a newer one).
type job struct {
	cond      *twinquery.Condition
	cancelled chan struct{} // closed by cancel

	writeMu sync.Mutex
	mu      sync.Mutex
	state   jobState
	dirty   bool // device records changed since the last write
}

// jobs is the hub's jobs v2 engine: every job, its persistence and the
// goroutines that run them. Each job runs in a goroutine of its own (from
// its start until it ends), which owns the workers that call devices; all
// of them are waited for by close.
type jobs struct {
	h       *Hub
	dir     string
	workers int // device operations in flight per job: jobWorkers

	mu      sync.Mutex
	m       map[string]*job
	started bool
	closed  bool
	wg      sync.WaitGroup
}

// openJobs loads the jobs of the state dir into h.jobs. A job that was
// running when the hub stopped ends failed, its unfinished devices failed
// with restartReason; queued and scheduled jobs are resumed by start. A
// file that cannot be read or parsed is an error naming it.
func (h *Hub) openJobs() error {
	s := &jobs{h: h, dir: filepath.Join(h.opts.Dir, jobsDir), workers: jobWorkers, m: map[string]*job{}}
	if err := ensureDir(s.dir); err != nil {
		return err
	}
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("jobs: %w", err)
	}
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !e.Type().IsRegular() || !validJobID(name) {
			continue // temporary files of an interrupted write, strays
		}
		j, err := s.load(filepath.Join(s.dir, e.Name()))
		if err != nil {
			return err
		}
		s.m[j.state.JobID] = j
	}
	h.jobs = s
	return nil
}

// load reads one job file and ends a job that was running.
func (s *jobs) load(path string) (*job, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("job: %w", err)
	}
	j := &job{cancelled: make(chan struct{})}
	if err := json.Unmarshal(b, &j.state); err != nil {
		return nil, fmt.Errorf("job file %s is corrupt (move it away to drop that job): %w", path, err)
	}
	if j.cond, err = parseQueryCondition(j.state.QueryCondition); err != nil {
		return nil, fmt.Errorf("job file %s: %w", path, err)
	}
	if j.running() { // running when the hub stopped (or cancelled, with calls in flight)
		now := s.h.opts.Now().UTC()
		j.end(jobFailed, restartReason, &deviceJobError{Code: "HubRestarted", Description: restartReason}, now)
		if err := s.persist(j); err != nil {
			return nil, err
		}
		s.h.log.Warn("job ended by a hub restart", logkey.JobID, j.state.JobID)
	}
	if finished(j.state.Status) {
		close(j.cancelled)
	}
	return j, nil
}

// start runs every job that is not finished: queued and scheduled jobs
// wait for their start time again.
func (s *jobs) start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.started = true
	for _, j := range s.m {
		j.mu.Lock()
		done := finished(j.state.Status)
		j.mu.Unlock()
		if !done {
			s.spawn(j)
		}
	}
}

// spawn runs j in a goroutine of its own; s.mu is held.
func (s *jobs) spawn(j *job) {
	s.wg.Go(func() {
		s.run(j)
	})
}

// close stops the engine: it waits for every job goroutine (they stop
// when h.done is closed: no device is started after that, calls in flight
// end with the hub, and each goroutine writes its job's last state). A job
// that was running stays "running" on disk; the next openJobs ends it. It
// is safe on a nil *jobs (a hub whose state never opened).
func (s *jobs) close() {
	if s == nil {
		return
	}
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.wg.Wait()
}

// add registers a new job and starts it. The error is an *iothub.Error:
// 409 JobAlreadyExists, or 503001 when the hub is closing; nothing is
// created then.
func (s *jobs) add(j *job) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return iothub.NewError(iothub.CodeServiceUnavailable, "The local hub is shutting down.")
	}
	if _, ok := s.m[j.state.JobID]; ok {
		return errJobExists(j.state.JobID)
	}
	if err := s.persist(j); err != nil {
		return err
	}
	s.m[j.state.JobID] = j
	if s.started {
		s.spawn(j)
	}
	return nil
}

// get returns job id, or the 404 JobNotFound error.
func (s *jobs) get(id string) (*job, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.m[id]
	if !ok {
		return nil, errJobNotFound(id)
	}
	return j, nil
}

// all returns every job, oldest first (then by id).
func (s *jobs) all() []*job {
	s.mu.Lock()
	out := make([]*job, 0, len(s.m))
	for _, j := range s.m {
		out = append(out, j)
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b *job) int {
		if c := a.state.CreatedTime.Compare(b.state.CreatedTime); c != 0 { // immutable after creation
			return c
		}
		return strings.Compare(a.state.JobID, b.state.JobID)
	})
	return out
}

// persist writes j's file with its current state.
func (s *jobs) persist(j *job) error {
	j.writeMu.Lock()
	defer j.writeMu.Unlock()
	j.mu.Lock()
	b, err := json.Marshal(&j.state)
	j.dirty = false
	j.mu.Unlock()
	if err != nil {
		return fmt.Errorf("job %s: %w", j.state.JobID, err)
	}
	return writeFileAtomic(filepath.Join(s.dir, j.state.JobID+".json"), b)
}

// save is persist for the engine: a failed write is logged (the job goes
// on in memory; the next write may succeed).
func (s *jobs) save(j *job) {
	if err := s.persist(j); err != nil {
		s.h.log.Error("job state not written", logkey.JobID, j.state.JobID, logkey.Err, err)
	}
}

// cancel cancels job id: a queued or scheduled job never runs; a running
// job starts no further device (its pending devices become canceled, those
// in flight finish and keep their outcome). It returns the job. A finished
// job is 400 OperationNotAllowedInCurrentState, as the real hub answers a
// job it cannot cancel (azure-iot-sdk-node#464).
func (s *jobs) cancel(id string) (*job, error) {
	j, err := s.get(id)
	if err != nil {
		return nil, err
	}
	j.mu.Lock()
	if st := j.state.Status; finished(st) {
		j.mu.Unlock()
		return nil, errNotCancellable(st)
	}
	now := s.h.opts.Now().UTC()
	j.state.Status = jobCancelled
	for _, d := range j.state.Devices {
		if d.Status == devicePending {
			d.Status, d.LastUpdated = deviceCanceled, now
		}
	}
	if !j.running() {
		j.state.EndTime = now
	}
	close(j.cancelled)
	j.mu.Unlock()
	s.h.log.Info("job cancelled", logkey.JobID, id)
	return j, s.persist(j)
}

// running reports whether j has begun to run and not yet ended; j.mu is held.
func (j *job) running() bool { return !j.state.RunTime.IsZero() && j.state.EndTime.IsZero() }

// end finishes j with status (unless it was cancelled) and reason; every
// device not finished gets devErr (nil: leaves it as it is). j.mu must
// not be held.
func (j *job) end(status, reason string, devErr *deviceJobError, now time.Time) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.state.Status != jobCancelled {
		j.state.Status = status
		j.state.FailureReason = reason
	}
	j.state.EndTime = now
	if devErr == nil {
		return
	}
	for _, d := range j.state.Devices {
		if d.Status == devicePending || d.Status == deviceRunning {
			e := *devErr
			d.Status, d.Error, d.End, d.LastUpdated = deviceFailed, &e, now, now
		}
	}
}

// validJobID reports whether id is 1 to 64 US-ASCII letters, digits and
// '-' (§4.1).
func validJobID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range []byte(id) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// parseQueryCondition parses a job's queryCondition; the error is a
// *twinquery.SyntaxError.
func parseQueryCondition(s string) (*twinquery.Condition, error) {
	c, err := twinquery.ParseCondition(s)
	var se *twinquery.SyntaxError
	if err != nil && !errors.As(err, &se) {
		return nil, err
	}
	return c, err
}

// Job error names: C# ErrorCode has JobNotFound 404002; the others have no
// number there, so they are sent by name only (format B carries the name).
const codeJobNotFound = 404002

func errJobNotFound(id string) error {
	e := iothub.NewError(codeJobNotFound, "Job with ID '"+id+"' not found")
	e.Name = "JobNotFound"
	return e
}

func errJobExists(id string) error {
	return &iothub.Error{HTTPStatus: 409, Name: "JobAlreadyExists", Message: "A job with ID '" + id + "' already exists."}
}

func errNotCancellable(status string) error {
	return &iothub.Error{HTTPStatus: 400, Name: "OperationNotAllowedInCurrentState",
		Message: "Job cannot be cancelled in '" + strings.ToUpper(status[:1]) + status[1:] + "' status."}
}
