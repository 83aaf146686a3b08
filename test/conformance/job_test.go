package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/methodd/methodd/internal/localhub"
)

// jobScenarios: jobs v2 between the SDK back end (job_service.js:
// azure-iothub JobClient and Registry), the local hub and SDK devices
// (device.js). Each selects devices by a tag of its own, so they run in
// parallel on one hub.
var jobScenarios = []scenario{
	{"job_method_one_device_offline", 60 * time.Second, jobMethodOneOffline},
	{"job_cancelled_before_start", 60 * time.Second, jobCancelledBeforeStart},
	{"job_twin_update", 60 * time.Second, jobTwinUpdate},
}

// TestSDKJobs runs every job scenario against one faithful local hub, one
// subtest per scenario, in parallel.
func TestSDKJobs(t *testing.T) {
	requireNodeModules(t)
	t.Parallel()
	h := startHub(t, localhub.Faults{})
	for _, sc := range jobScenarios {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			runScenario(t, sc, h)
		})
	}
}

// jobCmd is one stdin command of job_service.js.
type jobCmd struct {
	ID        string          `json:"id"`
	Op        string          `json:"op"`
	JobID     string          `json:"jobId,omitempty"`
	Condition string          `json:"condition,omitempty"`
	Params    json.RawMessage `json:"params,omitempty"`
	Patch     json.RawMessage `json:"patch,omitempty"`
	Start     string          `json:"start,omitempty"`
	MaxExec   int             `json:"maxExec,omitempty"`
	Status    string          `json:"status,omitempty"`
	Type      string          `json:"type,omitempty"`
	PageSize  int             `json:"pageSize,omitempty"`
	Device    string          `json:"device,omitempty"`
}

// jobLine is one result line of job_service.js.
type jobLine struct {
	Event      string            `json:"event"`
	ID         string            `json:"id"`
	OK         bool              `json:"ok"`
	Error      string            `json:"error"`
	HTTPStatus *int              `json:"httpStatus"`
	Job        json.RawMessage   `json:"job"`
	Items      []json.RawMessage `json:"items"`
	Pages      int               `json:"pages"`
	Twin       json.RawMessage   `json:"twin"`

	line string
}

// startJobService runs job_service.js with the hub's service connection
// string and the redirect preload; it reuses twinProc's command plumbing.
func (h *hubEnv) startJobService(ctx context.Context, t *testing.T) (*twinProc, error) {
	env := []string{
		"SERVICE_CONNECTION_STRING=" + h.serviceCS,
		"NODE_EXTRA_CA_CERTS=" + h.info.CAFile,
		"METHODD_REDIRECT=" + h.redirect,
	}
	n, err := startNode(ctx, t, "job_service.js", env, "-r", "./redirect.js", "job_service.js")
	if err != nil {
		return nil, err
	}
	return waitReady(ctx, n)
}

// job sends one command to job_service.js; it must succeed.
func job(ctx context.Context, p *twinProc, what string, c jobCmd) (jobLine, error) {
	c.ID = fmt.Sprintf("c%d", p.next.Add(1))
	b, err := json.Marshal(c)
	if err != nil {
		return jobLine{}, err
	}
	if _, err := p.stdin.Write(append(b, '\n')); err != nil {
		return jobLine{}, fmt.Errorf("%s: send %s: %w", p.name, what, err)
	}
	ctx, cancel := context.WithTimeout(ctx, twinOpTimeout)
	defer cancel()
	var l jobLine
	ev, err := p.waitFor(ctx, "result of "+what, func(e event) bool {
		return json.Unmarshal([]byte(e.Raw), &l) == nil && l.Event == "result" && l.ID == c.ID
	})
	if err != nil {
		return jobLine{}, err
	}
	l = jobLine{}
	_ = json.Unmarshal([]byte(ev.Raw), &l)
	l.line = ev.Raw
	if !l.OK {
		return l, fmt.Errorf("%s failed: %s", what, l.line)
	}
	return l, nil
}

// tagDevices registers the devices and sets their tags through the SDK.
func tagDevices(ctx context.Context, h *hubEnv, s *twinProc, tags string, ids ...string) error {
	for _, id := range ids {
		if _, err := h.device(id, ""); err != nil {
			return err
		}
		if _, err := job(ctx, s, "Registry.updateTwin "+id, jobCmd{Op: "updateTwin", Device: id, Patch: json.RawMessage(`{"tags":` + tags + `}`)}); err != nil {
			return err
		}
	}
	return nil
}

// wantStats checks a job's status and deviceJobStatistics (deviceCount,
// failed, succeeded, running, pending).
func wantStats(c *twinCheck, what string, doc json.RawMessage, status string, n ...int) {
	c.equal(what, doc, "status", status)
	for i, k := range []string{"deviceCount", "failedCount", "succeededCount", "runningCount", "pendingCount"} {
		c.equal(what, doc, "deviceJobStatistics."+k, n[i])
	}
}

// jobMethodOneOffline: JobClient.scheduleDeviceMethod (the 3-argument
// promise form: startTime null, no maxExecutionTimeInSeconds) over a tag
// condition selecting two running SDK devices and one offline: the job
// completes with exact statistics, the per-device records (a devices.jobs
// query through Registry.createQuery, page size 1) show the echoes and the
// offline device's 404103; the job is in JobClient.createQuery's
// completed method jobs.
func jobMethodOneOffline(ctx context.Context, t *testing.T, h *hubEnv) error {
	s, err := h.startJobService(ctx, t)
	if err != nil {
		return err
	}
	on, off := []string{"jm-1", "jm-2"}, "jm-3"
	if err := tagDevices(ctx, h, s, `{"jobsc":"method"}`, append(on, off)...); err != nil {
		return err
	}
	for _, id := range on {
		if _, err := h.readyDevice(ctx, t, id, "", deviceOptions{}); err != nil {
			return err
		}
	}
	l, err := job(ctx, s, "JobClient.scheduleDeviceMethod", jobCmd{Op: "scheduleDeviceMethod", JobID: "jm-job",
		Condition: "tags.jobsc = 'method'", Params: json.RawMessage(`{"methodName":"echo","payload":{"n":1},"responseTimeoutInSeconds":15}`)})
	if err != nil {
		return err
	}
	var c twinCheck
	c.keys("schedule result", l.Job, "", "jobId", "type", "status")
	c.equal("schedule result", l.Job, "status", "queued")
	if l, err = job(ctx, s, "wait for completed", jobCmd{Op: "waitJob", JobID: "jm-job", Status: "completed"}); err != nil {
		return err
	}
	wantStats(&c, "JobClient.getJob", l.Job, "completed", 3, 1, 2, 0, 0)
	c.equal("JobClient.getJob", l.Job, "maxExecutionTimeInSeconds", 3600)
	c.equal("JobClient.getJob", l.Job, "cloudToDeviceMethod.methodName", "echo")
	if l, err = job(ctx, s, "JobClient.createQuery", jobCmd{Op: "listJobs", Type: "scheduleDeviceMethod", Status: "completed", PageSize: 1}); err != nil {
		return err
	}
	found := false
	for _, it := range l.Items {
		if v, _ := jsonAt(it, "jobId"); v == "jm-job" {
			found = true
		}
	}
	if !found {
		c.add("JobClient.createQuery('scheduleDeviceMethod','completed',1) lacks jm-job: %s", l.line)
	}
	if err := c.err(); err != nil {
		return err
	}
	return checkMethodRecords(ctx, s)
}

// checkMethodRecords reads jm-job's per-device records with a devices.jobs
// query, page size 1.
func checkMethodRecords(ctx context.Context, s *twinProc) error {
	l, err := job(ctx, s, "devices.jobs query", jobCmd{Op: "records", JobID: "jm-job", PageSize: 1})
	if err != nil {
		return err
	}
	var c twinCheck
	if len(l.Items) != 3 || l.Pages != 3 {
		c.add("devices.jobs query: %d records in %d pages, want 3 in 3: %s", len(l.Items), l.Pages, l.line)
	}
	for _, it := range l.Items {
		id, _ := jsonAt(it, "deviceId")
		what := fmt.Sprintf("record of %v", id)
		c.equal(what, it, "jobId", "jm-job")
		c.equal(what, it, "jobType", "scheduleDeviceMethod")
		if id == "jm-3" {
			c.equal(what, it, "status", "failed")
			c.equal(what, it, "error.code", "404103")
			continue
		}
		c.equal(what, it, "status", "completed")
		c.equal(what, it, "outcome.deviceMethodResponse.status", 200)
		c.equal(what, it, "outcome.deviceMethodResponse.payload", map[string]any{"n": 1})
	}
	return c.err()
}

// jobCancelledBeforeStart: a method job scheduled an hour ahead (the
// 5-argument form) answers queued, is cancelled by JobClient.cancelJob and
// reads cancelled, with no device touched.
func jobCancelledBeforeStart(ctx context.Context, t *testing.T, h *hubEnv) error {
	s, err := h.startJobService(ctx, t)
	if err != nil {
		return err
	}
	if err := tagDevices(ctx, h, s, `{"jobsc":"cancel"}`, "jc-1"); err != nil {
		return err
	}
	start := time.Now().Add(time.Hour).UTC().Format("2006-01-02T15:04:05.000Z")
	l, err := job(ctx, s, "JobClient.scheduleDeviceMethod", jobCmd{Op: "scheduleDeviceMethod", JobID: "jc-job",
		Condition: "tags.jobsc = 'cancel'", Params: json.RawMessage(`{"methodName":"echo"}`), Start: start, MaxExec: 600})
	if err != nil {
		return err
	}
	var c twinCheck
	c.equal("schedule result", l.Job, "status", "queued")
	if l, err = job(ctx, s, "JobClient.cancelJob", jobCmd{Op: "cancelJob", JobID: "jc-job"}); err != nil {
		return err
	}
	c.equal("JobClient.cancelJob", l.Job, "status", "cancelled")
	if l, err = job(ctx, s, "JobClient.getJob", jobCmd{Op: "getJob", JobID: "jc-job"}); err != nil {
		return err
	}
	wantStats(&c, "JobClient.getJob", l.Job, "cancelled", 0, 0, 0, 0, 0)
	c.equal("JobClient.getJob", l.Job, "maxExecutionTimeInSeconds", 600)
	if got, _ := jsonAt(l.Job, "startTime"); !strings.HasPrefix(fmt.Sprint(got), start[:19]) {
		c.add("JobClient.getJob: startTime %v, want %s", got, start)
	}
	return c.err()
}

// jobTwinUpdate: JobClient.scheduleTwinUpdate over a tag condition
// patches tags and desired properties of both selected devices.
func jobTwinUpdate(ctx context.Context, t *testing.T, h *hubEnv) error {
	s, err := h.startJobService(ctx, t)
	if err != nil {
		return err
	}
	ids := []string{"jt-1", "jt-2"}
	if err := tagDevices(ctx, h, s, `{"jobsc":"twin"}`, ids...); err != nil {
		return err
	}
	if _, err := job(ctx, s, "JobClient.scheduleTwinUpdate", jobCmd{Op: "scheduleTwinUpdate", JobID: "jt-job", Condition: "tags.jobsc = 'twin'",
		Patch: json.RawMessage(`{"etag":"*","tags":{"updated":1},"properties":{"desired":{"x":1},"reported":{}}}`)}); err != nil {
		return err
	}
	l, err := job(ctx, s, "wait for completed", jobCmd{Op: "waitJob", JobID: "jt-job", Status: "completed"})
	if err != nil {
		return err
	}
	var c twinCheck
	wantStats(&c, "JobClient.getJob", l.Job, "completed", 2, 0, 2, 0, 0)
	c.equal("JobClient.getJob", l.Job, "type", "scheduleUpdateTwin")
	for _, id := range ids {
		g, err := job(ctx, s, "Registry.getTwin "+id, jobCmd{Op: "getTwin", Device: id})
		if err != nil {
			return err
		}
		c.equal("twin of "+id, g.Twin, "tags.updated", 1)
		c.equal("twin of "+id, g.Twin, "tags.jobsc", "twin")
		c.equal("twin of "+id, g.Twin, "properties.desired.x", 1)
	}
	return c.err()
}
