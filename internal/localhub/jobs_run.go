package localhub

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/methodd/methodd/internal/logkey"
	"github.com/methodd/methodd/internal/twinquery"
	"github.com/methodd/methodd/iothub"
)

// jobWorkers bounds the device operations one job has in flight: the job
// runs its devices 64 at a time, in device-id order.
const jobWorkers = 64

// run is a job's life: it waits for the start time, selects its devices,
// runs them and ends the job. It returns early when the job is cancelled
// before it starts or the hub closes.
func (s *jobs) run(j *job) {
	if !s.waitStart(j) {
		return
	}
	if !s.begin(j, s.selectDevices(j.cond)) {
		return
	}
	timedOut := s.execute(j)
	if s.closing() {
		s.save(j) // still "running" on disk: the next start ends it
		return
	}
	now := s.h.opts.Now().UTC()
	if timedOut {
		j.end(jobFailed, j.timeoutReason(), nil, now)
	} else {
		j.end(jobCompleted, "", nil, now)
	}
	s.save(j)
	j.mu.Lock()
	st, n := j.state.Status, len(j.state.Devices)
	j.mu.Unlock()
	s.h.log.Info("job "+st, logkey.JobID, j.state.JobID, logkey.Devices, n) // completed, failed or cancelled
}

// closing reports whether the hub is closing.
func (s *jobs) closing() bool {
	select {
	case <-s.h.done:
		return true
	default:
		return false
	}
}

// waitStart waits until j is due (marking it scheduled when that is in the
// future); false when it was cancelled first or the hub closes.
func (s *jobs) waitStart(j *job) bool {
	j.mu.Lock()
	wait := j.state.StartTime.Sub(s.h.opts.Now())
	mark := wait > 0 && j.state.Status == jobQueued
	if mark {
		j.state.Status = jobScheduled
	}
	j.mu.Unlock()
	if mark {
		s.save(j)
	}
	if wait <= 0 {
		return true
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-j.cancelled:
	case <-s.h.done:
	}
	return false
}

// selectDevices returns the ids of the devices (not modules) whose service
// twin c matches, sorted.
func (s *jobs) selectDevices(c *twinquery.Condition) []string {
	var ids []string
	for id := range s.h.reg.identities() {
		if !strings.Contains(id, "/") && s.h.twinMatches(c, id) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// twinMatches reports whether c (nil: any) matches clientID's service
// twin document.
func (h *Hub) twinMatches(c *twinquery.Condition, clientID string) bool {
	if c == nil {
		return true
	}
	doc, err := h.twinDocument(clientID)
	if err != nil {
		return false // deleted meanwhile
	}
	m, err := decodeDocument(doc)
	return err == nil && c.Match(m)
}

// decodeDocument decodes a JSON object as the query evaluator wants it.
func decodeDocument(doc []byte) (map[string]any, error) {
	d := json.NewDecoder(bytes.NewReader(doc))
	d.UseNumber()
	var m map[string]any
	err := d.Decode(&m)
	return m, err
}

// begin makes j running with one pending record per device; false when
// it was cancelled meanwhile.
func (s *jobs) begin(j *job, ids []string) bool {
	now := s.h.opts.Now().UTC()
	j.mu.Lock()
	if j.state.Status == jobCancelled {
		j.mu.Unlock()
		return false
	}
	j.state.Status, j.state.RunTime = jobRunning, now
	j.state.Devices = make([]*deviceRecord, len(ids))
	for i, id := range ids {
		j.state.Devices[i] = &deviceRecord{DeviceID: id, Status: devicePending, Created: now, LastUpdated: now}
	}
	j.mu.Unlock()
	s.save(j)
	s.h.log.Info("job started", logkey.JobID, j.state.JobID, logkey.Devices, len(ids))
	return true
}

// execute runs j's devices with jobWorkers in flight until all are done,
// the job is cancelled, its maxExecutionTimeInSeconds passes (timedOut)
// or the hub closes; calls in flight then finish. Meanwhile the job's file
// is rewritten every jobPersistEvery when something changed.
func (s *jobs) execute(j *job) (timedOut bool) {
	j.mu.Lock()
	n, limit := len(j.state.Devices), time.Duration(j.state.MaxExecution)*time.Second
	j.mu.Unlock()
	s.mu.Lock()
	workers := s.workers
	s.mu.Unlock()
	work := make(chan int)
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Go(func() {
			for i := range work {
				s.runDevice(j, i)
			}
		})
	}
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	tick := time.NewTicker(jobPersistEvery)
	defer tick.Stop()
feed:
	for i := 0; i < n; {
		select {
		case work <- i:
			i++
		case <-tick.C:
			s.saveIfDirty(j)
		case <-j.cancelled:
			break feed
		case <-s.h.done:
			break feed
		case <-deadline.C:
			timedOut = true
			j.expire(s.h.opts.Now().UTC())
			break feed
		}
	}
	close(work)
	idle := make(chan struct{})
	go func() { // owned by execute, which waits for idle
		wg.Wait()
		close(idle)
	}()
	for {
		select {
		case <-idle:
			return timedOut
		case <-tick.C:
			s.saveIfDirty(j)
		}
	}
}

// timeoutReason is the failure of a job past its maxExecutionTimeInSeconds.
func (j *job) timeoutReason() string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return fmt.Sprintf("The job did not finish within its maxExecutionTimeInSeconds (%d).", j.state.MaxExecution)
}

// expire fails every device of j still pending with JobTimeout; calls in
// flight keep running and keep their outcome.
func (j *job) expire(now time.Time) {
	reason := j.timeoutReason()
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, d := range j.state.Devices {
		if d.Status == devicePending {
			d.Status, d.End, d.LastUpdated = deviceFailed, now, now
			d.Error = &deviceJobError{Code: "JobTimeout", Description: reason}
		}
	}
	j.dirty = true
}

// saveIfDirty writes j's file when a device record changed since the last
// write.
func (s *jobs) saveIfDirty(j *job) {
	j.mu.Lock()
	dirty := j.dirty
	j.mu.Unlock()
	if dirty {
		s.save(j)
	}
}

// runDevice runs device i of j unless it is no longer pending (cancelled),
// and records the outcome. An operation cut short by the hub closing is
// not recorded: the device stays running, and the next start fails it.
func (s *jobs) runDevice(j *job, i int) {
	now := s.h.opts.Now().UTC()
	j.mu.Lock()
	d := j.state.Devices[i]
	if d.Status != devicePending {
		j.mu.Unlock()
		return
	}
	d.Status, d.Start, d.LastUpdated, j.dirty = deviceRunning, now, now, true
	id, method, twin := d.DeviceID, j.state.Method, j.state.UpdateTwin
	j.mu.Unlock()

	var out *methodOutcome
	var err error
	if method != nil {
		out, err = s.callMethod(id, method)
	} else {
		err = s.updateTwin(id, twin)
	}
	if err != nil && s.closing() {
		return
	}
	now = s.h.opts.Now().UTC()
	j.mu.Lock()
	defer j.mu.Unlock()
	d.End, d.LastUpdated, j.dirty = now, now, true
	if err != nil {
		d.Status, d.Error = deviceFailed, jobErrorOf(err)
		return
	}
	d.Status, d.Response = deviceCompleted, out
}

// callMethod calls the job's method on device id through the hub's own
// method path. Any reply of the device, whatever its status, is an
// outcome; the error is the hub's (404103 for an offline device, 504101
// for no reply in time, ...).
func (s *jobs) callMethod(id string, m *jobMethod) (*methodOutcome, error) {
	var payload json.RawMessage
	if !bytes.Equal(m.Payload, []byte("null")) {
		payload = m.Payload
	}
	res, err := s.h.Invoke(context.Background(), id, "", iothub.MethodRequest{
		MethodName:               m.MethodName,
		Payload:                  payload,
		ResponseTimeoutInSeconds: m.ResponseTimeoutInSeconds,
		ConnectTimeoutInSeconds:  m.ConnectTimeoutInSeconds,
	})
	if err != nil {
		return nil, err
	}
	p := res.Payload
	if len(p) == 0 {
		p = json.RawMessage("null")
	}
	return &methodOutcome{Status: res.Status, Payload: p}, nil
}

// updateTwin applies the job's updateTwin to device id's twin as a PATCH
// would, with its etag as If-Match.
func (s *jobs) updateTwin(id string, body json.RawMessage) error {
	var head struct {
		ETag string `json:"etag"`
	}
	_ = json.Unmarshal(body, &head) // validated at creation
	_, err := s.h.updateTwin(id, body, false, strings.Trim(head.ETag, `"`))
	return err
}

// jobErrorOf is a device record's error for err: the hub's numeric code
// (its name when it has no number) and message.
func jobErrorOf(err error) *deviceJobError {
	var he *iothub.Error
	if !errors.As(err, &he) {
		return &deviceJobError{Code: strconv.Itoa(iothub.CodeServerError), Description: err.Error()}
	}
	code := he.Name
	if he.Code != 0 {
		code = strconv.Itoa(he.Code)
	}
	return &deviceJobError{Code: code, Description: he.Message}
}
