package localhub_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/methodd/methodd/internal/localhub"
	"github.com/methodd/methodd/internal/testkit"
	"github.com/methodd/methodd/iothub"
)

// jobDoc is a JobResponse as the tests read it.
type jobDoc struct {
	JobID          string          `json:"jobId"`
	Type           string          `json:"type"`
	Status         string          `json:"status"`
	QueryCondition string          `json:"queryCondition"`
	StartTime      string          `json:"startTime"`
	EndTime        string          `json:"endTime"`
	CreatedTime    string          `json:"createdTime"`
	MaxExecution   int             `json:"maxExecutionTimeInSeconds"`
	Method         json.RawMessage `json:"cloudToDeviceMethod"`
	UpdateTwin     json.RawMessage `json:"updateTwin"`
	FailureReason  string          `json:"failureReason"`
	Stats          jobStats        `json:"deviceJobStatistics"`
}

type jobStats struct {
	DeviceCount    int `json:"deviceCount"`
	FailedCount    int `json:"failedCount"`
	SucceededCount int `json:"succeededCount"`
	RunningCount   int `json:"runningCount"`
	PendingCount   int `json:"pendingCount"`
}

// deviceJobDoc is a devices.jobs record as the tests read it.
type deviceJobDoc struct {
	DeviceID string `json:"deviceId"`
	JobID    string `json:"jobId"`
	JobType  string `json:"jobType"`
	Status   string `json:"status"`
	Outcome  *struct {
		DeviceMethodResponse *struct {
			Status  int             `json:"status"`
			Payload json.RawMessage `json:"payload"`
		} `json:"deviceMethodResponse"`
	} `json:"outcome"`
	Error *struct {
		Code        string `json:"code"`
		Description string `json:"description"`
	} `json:"error"`
}

// createJob PUTs a job and wants 200 with exactly {"jobId","type","status":"queued"}.
func (th *testHub) createJob(t testing.TB, id, body string) {
	t.Helper()
	r := th.call(t, http.MethodPut, "/jobs/v2/"+id, []byte(body))
	if r.status != http.StatusOK {
		t.Fatalf("create job %s: status %d %s", id, r.status, r.body)
	}
	var typ struct{ Type string }
	_ = json.Unmarshal([]byte(body), &typ)
	if want := fmt.Sprintf(`{"jobId":%q,"type":%q,"status":"queued"}`, id, typ.Type); string(r.body) != want {
		t.Fatalf("create job %s: body %s, want %s", id, r.body, want)
	}
}

// getJob reads a job; it must exist.
func (th *testHub) getJob(t testing.TB, id string) jobDoc {
	t.Helper()
	r := th.call(t, http.MethodGet, "/jobs/v2/"+id, nil)
	if r.status != http.StatusOK {
		t.Fatalf("get job %s: status %d %s", id, r.status, r.body)
	}
	return decodeJob(t, r.body)
}

func decodeJob(t testing.TB, b []byte) jobDoc {
	t.Helper()
	var j jobDoc
	if err := json.Unmarshal(b, &j); err != nil {
		t.Fatalf("job %s: %v", b, err)
	}
	s := j.Stats
	if s.FailedCount+s.SucceededCount+s.RunningCount+s.PendingCount != s.DeviceCount {
		t.Fatalf("statistics do not add up: %+v", s)
	}
	return j
}

// waitJob waits until job id has status, and returns it.
func (th *testHub) waitJob(t testing.TB, id, status string) jobDoc {
	t.Helper()
	var j jobDoc
	testkit.Eventually(t, waitFor, "job "+id+" "+status, func() bool {
		j = th.getJob(t, id)
		return j.Status == status
	})
	return j
}

// jobRecords returns job id's device records by device id.
func (th *testHub) jobRecords(t testing.TB, id string) map[string]deviceJobDoc {
	t.Helper()
	raw, err := th.JobRecords("SELECT * FROM devices.jobs WHERE devices.jobs.jobId = '" + id + "'")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]deviceJobDoc{}
	for _, b := range raw {
		var d deviceJobDoc
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("record %s: %v", b, err)
		}
		if d.JobID != id {
			t.Errorf("record of job %s in the records of %s", d.JobID, id)
		}
		out[d.DeviceID] = d
	}
	return out
}

// tag sets tags on each device's twin.
func (th *testHub) tag(t testing.TB, tags string, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if _, err := th.UpdateTwin(id, []byte(`{"tags":`+tags+`}`), false, "*"); err != nil {
			t.Fatalf("tag %s: %v", id, err)
		}
	}
}

// TestJobMethod: a method job over a tag condition calls the selected
// devices; the offline one fails with the hub's 404103, a device outside
// the condition is not touched; statistics and records are exact.
func TestJobMethod(t *testing.T) {
	th := startHub(t, localhub.Options{Devices: []string{"dev1", "dev2", "dev3", "dev4"}})
	th.tag(t, `{"site":"a"}`, "dev1", "dev2", "dev3")
	th.tag(t, `{"site":"b"}`, "dev4")
	seen1 := th.mustConnect(t, "dev1").subscribe(t, 1, echo)
	th.mustConnect(t, "dev2").subscribe(t, 1, func(r request) (int, []byte, bool) { return 201, []byte(`{"two":2}`), true })
	seen4 := th.mustConnect(t, "dev4").subscribe(t, 1, echo)

	th.createJob(t, "job-1", `{"jobId":"job-1","type":"scheduleDeviceMethod","cloudToDeviceMethod":{"methodName":"reboot","payload":{"delay":1},"responseTimeoutInSeconds":15},"startTime":null,"queryCondition":"tags.site = 'a'"}`)
	j := th.waitJob(t, "job-1", "completed")
	if want := (jobStats{DeviceCount: 3, FailedCount: 1, SucceededCount: 2}); j.Stats != want {
		t.Errorf("statistics %+v, want %+v", j.Stats, want)
	}
	if j.MaxExecution != 3600 || j.EndTime == "" || j.QueryCondition != "tags.site = 'a'" || j.Type != "scheduleDeviceMethod" {
		t.Errorf("job document %+v", j)
	}
	var m struct {
		MethodName string          `json:"methodName"`
		Payload    json.RawMessage `json:"payload"`
		Timeout    int             `json:"responseTimeoutInSeconds"`
	}
	if err := json.Unmarshal(j.Method, &m); err != nil || m.MethodName != "reboot" || string(m.Payload) != `{"delay":1}` || m.Timeout != 15 {
		t.Errorf("cloudToDeviceMethod %s", j.Method)
	}
	recs := th.jobRecords(t, "job-1")
	if len(recs) != 3 {
		t.Fatalf("%d records, want 3: %+v", len(recs), recs)
	}
	for id, want := range map[string]struct {
		status  int
		payload string
	}{"dev1": {200, `{"delay":1}`}, "dev2": {201, `{"two":2}`}} {
		r := recs[id]
		if r.Status != "completed" || r.JobType != "scheduleDeviceMethod" || r.Outcome == nil || r.Outcome.DeviceMethodResponse == nil ||
			r.Outcome.DeviceMethodResponse.Status != want.status || string(r.Outcome.DeviceMethodResponse.Payload) != want.payload || r.Error != nil {
			t.Errorf("record of %s: %+v", id, r)
		}
	}
	if r := recs["dev3"]; r.Status != "failed" || r.Error == nil || r.Error.Code != "404103" || r.Outcome != nil {
		t.Errorf("record of the offline dev3: %+v", r)
	}
	if got := (<-seen1).method; got != "reboot" {
		t.Errorf("dev1 got method %q", got)
	}
	select {
	case r := <-seen4:
		t.Errorf("dev4 (site b) was called: %+v", r)
	default:
	}
	// The devices.jobs source filters on record fields.
	raw, err := th.JobRecords("SELECT * FROM devices.jobs WHERE devices.jobs.jobId = 'job-1' AND devices.jobs.status = 'failed'")
	if err != nil || len(raw) != 1 || !strings.Contains(string(raw[0]), `"deviceId":"dev3"`) {
		t.Errorf("failed records: %s, %v", raw, err)
	}
}

// TestJobTwinUpdate: a twin job patches tags and desired properties of the
// devices its condition selects, and only those.
func TestJobTwinUpdate(t *testing.T) {
	th := startHub(t, localhub.Options{Devices: []string{"dev1", "dev2", "dev3"}})
	th.createJob(t, "twin-1", `{"jobId":"twin-1","type":"scheduleUpdateTwin","updateTwin":{"etag":"*","tags":{"t":1},"properties":{"desired":{"x":1},"reported":{}}},"startTime":"2020-01-01T00:00:00.000Z","maxExecutionTimeInSeconds":120,"queryCondition":"deviceId IN ['dev1','dev2']"}`)
	j := th.waitJob(t, "twin-1", "completed")
	if want := (jobStats{DeviceCount: 2, SucceededCount: 2}); j.Stats != want {
		t.Errorf("statistics %+v, want %+v", j.Stats, want)
	}
	for id, want := range map[string]bool{"dev1": true, "dev2": true, "dev3": false} {
		tw := wantTwin(t, th.call(t, http.MethodGet, "/twins/"+id, nil))
		got := string(tw.Tags) == `{"t":1}` && string(tw.Properties.Desired["x"]) == "1"
		if got != want {
			t.Errorf("twin of %s: tags %s desired %v; want patched %v", id, tw.Tags, tw.Properties.Desired, want)
		}
	}
	for id, r := range th.jobRecords(t, "twin-1") {
		if r.Status != "completed" || r.JobType != "scheduleUpdateTwin" || r.Outcome == nil || r.Outcome.DeviceMethodResponse != nil {
			t.Errorf("record of %s: %+v", id, r)
		}
	}
}

// TestJobCancelScheduled: a job due in an hour is scheduled; cancelled, it
// never runs; a finished job cannot be cancelled.
func TestJobCancelScheduled(t *testing.T) {
	th := startHub(t, localhub.Options{})
	seen := th.mustConnect(t, "dev1").subscribe(t, 1, echo)
	start := time.Now().Add(time.Hour).UTC().Format("2006-01-02T15:04:05.000Z")
	th.createJob(t, "later", `{"jobId":"later","type":"scheduleDeviceMethod","cloudToDeviceMethod":{"methodName":"m","payload":null,"responseTimeoutInSeconds":30},"startTime":"`+start+`","queryCondition":"*"}`)
	th.waitJob(t, "later", "scheduled")
	r := th.call(t, http.MethodPost, "/jobs/v2/later/cancel", nil)
	if r.status != http.StatusOK {
		t.Fatalf("cancel: %d %s", r.status, r.body)
	}
	if j := decodeJob(t, r.body); j.Status != "cancelled" || j.Stats != (jobStats{}) || j.EndTime == "" {
		t.Errorf("cancel answered %s", r.body)
	}
	if j := th.getJob(t, "later"); j.Status != "cancelled" {
		t.Errorf("after cancel: %+v", j)
	}
	if recs := th.jobRecords(t, "later"); len(recs) != 0 {
		t.Errorf("records of a job cancelled before its start: %+v", recs)
	}
	select {
	case r := <-seen:
		t.Errorf("the device was called: %+v", r)
	default:
	}
	r = th.call(t, http.MethodPost, "/jobs/v2/later/cancel", nil)
	wantNamedError(t, r, http.StatusBadRequest, "OperationNotAllowedInCurrentState")
	r = th.call(t, http.MethodPost, "/jobs/v2/nope/cancel", nil)
	wantNamedError(t, r, http.StatusNotFound, "JobNotFound")
}

// wantNamedError checks an error in body format B by its HTTP status and
// name (job errors without a number of their own).
func wantNamedError(t testing.TB, r response, status int, name string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d %s, want %d %s", r.status, r.body, status, name)
	}
	var b struct{ Message, ExceptionMessage string }
	if err := json.Unmarshal(r.body, &b); err != nil || !strings.HasPrefix(b.Message, "ErrorCode:"+name+";") ||
		!strings.HasPrefix(b.ExceptionMessage, "Tracking ID:") {
		t.Errorf("body %s, want format B with %s", r.body, name)
	}
	if got := r.header.Get(iothub.ErrorCodeHeader); got != name {
		t.Errorf("%s header %q, want %q", iothub.ErrorCodeHeader, got, name)
	}
}

// TestJobCreateRefused: each bad request is refused with the real status
// and creates nothing.
func TestJobCreateRefused(t *testing.T) {
	th := startHub(t, localhub.Options{})
	const ok = `{"type":"scheduleDeviceMethod","cloudToDeviceMethod":{"methodName":"m","payload":null,"responseTimeoutInSeconds":30},"startTime":null,"queryCondition":"*"}`
	th.createJob(t, "taken", ok)
	big := `{"type":"scheduleDeviceMethod","cloudToDeviceMethod":{"methodName":"m","payload":"` + strings.Repeat("x", iothub.MaxPayloadBytes) + `"},"queryCondition":"*"}`
	for _, tc := range []struct {
		name, id, body string
		status         int
		errName, text  string
	}{
		{"id too long", strings.Repeat("a", 65), ok, 400, "ArgumentInvalid", "job id"},
		{"id with a space", "job%201", ok, 400, "ArgumentInvalid", "job id"},
		{"id with a dot", "job.1", ok, 400, "ArgumentInvalid", "job id"},
		{"duplicate", "taken", ok, 409, "JobAlreadyExists", "taken"},
		{"body id differs", "j-1", `{"jobId":"j-2","type":"scheduleDeviceMethod","cloudToDeviceMethod":{"methodName":"m"},"queryCondition":"*"}`, 400, "ArgumentInvalid", "jobId"},
		{"bad start time", "j-1", strings.Replace(ok, `"startTime":null`, `"startTime":"tomorrow"`, 1), 400, "ArgumentInvalid", "startTime"},
		{"bad condition", "j-1", strings.Replace(ok, `"*"`, `"tags.site = "`, 1), 400, "ArgumentInvalid", "position"},
		{"full query as condition", "j-1", strings.Replace(ok, `"*"`, `"SELECT * FROM devices"`, 1), 400, "ArgumentInvalid", "position"},
		{"no condition", "j-1", strings.Replace(ok, `,"queryCondition":"*"`, ``, 1), 400, "ArgumentInvalid", "queryCondition"},
		{"payload too big", "j-1", big, 413, "MessageTooLarge", "128 KB"},
		{"unknown type", "j-1", strings.Replace(ok, "scheduleDeviceMethod", "scheduleDirectMethod", 1), 400, "GenericBadRequest", "type"},
		{"no method", "j-1", `{"type":"scheduleDeviceMethod","queryCondition":"*"}`, 400, "ArgumentInvalid", "cloudToDeviceMethod"},
		{"bad method name", "j-1", strings.Replace(ok, `"methodName":"m"`, `"methodName":""`, 1), 400, "ArgumentInvalid", "methodName"},
		{"response timeout", "j-1", strings.Replace(ok, `:30`, `:301`, 1), 400, "ArgumentInvalid", "responseTimeoutInSeconds"},
		{"max execution time", "j-1", strings.Replace(ok, `"startTime":null`, `"maxExecutionTimeInSeconds":0`, 1), 400, "ArgumentInvalid", "maxExecutionTimeInSeconds"},
		{"bad twin patch", "j-1", `{"type":"scheduleUpdateTwin","updateTwin":{"tags":{"a.b":1}},"queryCondition":"*"}`, 400, "ArgumentInvalid", "updateTwin"},
		{"not JSON", "j-1", `{"type":`, 400, "IotHubFormatError", "JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := th.call(t, http.MethodPut, "/jobs/v2/"+tc.id, []byte(tc.body))
			wantNamedError(t, r, tc.status, tc.errName)
			if !strings.Contains(string(r.body), tc.text) {
				t.Errorf("body %s does not mention %q", r.body, tc.text)
			}
		})
	}
	r := th.call(t, http.MethodGet, "/jobs/v2/j-1", nil)
	wantLegacyErrorNamed(t, r)
	if jobs := th.listJobs(t, ""); len(jobs) != 1 || jobs[0].JobID != "taken" {
		t.Errorf("jobs after the refusals: %+v", jobs)
	}
}

// wantLegacyErrorNamed checks the 404002 JobNotFound answer.
func wantLegacyErrorNamed(t testing.TB, r response) {
	t.Helper()
	wantNamedError(t, r, http.StatusNotFound, "JobNotFound")
	if e := iothub.ParseError(r.status, r.header.Get(iothub.ErrorCodeHeader), r.body); e.Name != "JobNotFound" {
		t.Errorf("parsed error %+v", e)
	}
}

// listJobs pages through GET /jobs/v2/query with query (e.g.
// "&jobType=x") and page size 1, checking the paging headers.
func (th *testHub) listJobs(t testing.TB, query string) []jobDoc {
	t.Helper()
	var all []jobDoc
	token := ""
	for range 100 {
		hdr := []string{"x-ms-max-item-count", "1"}
		if token != "" {
			hdr = append(hdr, "x-ms-continuation", token)
		}
		r := th.callQuery(t, "/jobs/v2/query", query, hdr...)
		if r.status != http.StatusOK || r.header.Get("x-ms-item-type") != "jobResponse" {
			t.Fatalf("list: %d %v %s", r.status, r.header, r.body)
		}
		var page []jobDoc
		if err := json.Unmarshal(r.body, &page); err != nil || len(page) > 1 {
			t.Fatalf("page %s: %v", r.body, err)
		}
		all = append(all, page...)
		vals, more := r.header["X-Ms-Continuation"]
		if !more {
			return all
		}
		if token = vals[0]; token == "" || len(page) == 0 {
			t.Fatalf("continuation %q after a page of %d", token, len(page))
		}
	}
	t.Fatal("the list never ends")
	return nil
}

// callQuery is call with extra query parameters.
func (th *testHub) callQuery(t testing.TB, path, query string, hdr ...string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "https://"+th.serviceHost(t)+path+"?"+iothub.MethodsQuery+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", th.serviceToken(t))
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := th.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&b); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

func (th *testHub) serviceHost(t testing.TB) string {
	cs, err := iothub.ParseServiceConnectionString(th.info.ServiceConnectionString)
	if err != nil {
		t.Fatal(err)
	}
	return cs.HostName
}

// TestJobList: filters by type and status, case-insensitively, paged.
func TestJobList(t *testing.T) {
	th := startHub(t, localhub.Options{})
	th.mustConnect(t, "dev1").subscribe(t, 1, echo)
	later := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	th.createJob(t, "m-1", `{"type":"scheduleDeviceMethod","cloudToDeviceMethod":{"methodName":"m"},"queryCondition":"*"}`)
	th.createJob(t, "m-2", `{"type":"scheduleDeviceMethod","cloudToDeviceMethod":{"methodName":"m"},"startTime":"`+later+`","queryCondition":"*"}`)
	th.createJob(t, "t-1", `{"type":"scheduleUpdateTwin","updateTwin":{"tags":{"a":1}},"queryCondition":"*"}`)
	th.waitJob(t, "m-1", "completed")
	th.waitJob(t, "t-1", "completed")
	th.waitJob(t, "m-2", "scheduled")
	ids := func(js []jobDoc) []string {
		out := []string{}
		for _, j := range js {
			out = append(out, j.JobID)
		}
		return out
	}
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"", []string{"m-1", "m-2", "t-1"}},
		{"&jobType=scheduleDeviceMethod", []string{"m-1", "m-2"}},
		{"&jobType=ScheduleUpdateTwin", []string{"t-1"}},
		{"&jobStatus=Completed", []string{"m-1", "t-1"}},
		{"&jobStatus=completed&jobType=scheduleDeviceMethod", []string{"m-1"}},
		{"&jobStatus=cancelled", []string{}},
	} {
		if got := ids(th.listJobs(t, tc.query)); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("list%s: %v, want %v", tc.query, got, tc.want)
		}
	}
	r := th.callQuery(t, "/jobs/v2/query", "")
	if _, more := r.header["X-Ms-Continuation"]; more || r.status != http.StatusOK {
		t.Errorf("one default page of 3: status %d, continuation %v", r.status, more)
	}
}

// TestJobsSurviveRestart: after a restart on the same state dir a finished
// job reads as before, a scheduled one is still scheduled, and one that
// was running ends failed with its unfinished device failed — never lost.
func TestJobsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	th := startHub(t, localhub.Options{Dir: dir, Devices: []string{"dev1", "dev2"}})
	th.mustConnect(t, "dev1").subscribe(t, 1, echo)
	hung := th.mustConnect(t, "dev2").subscribe(t, 1, func(request) (int, []byte, bool) { return 0, nil, false })
	th.createJob(t, "done", `{"type":"scheduleDeviceMethod","cloudToDeviceMethod":{"methodName":"m","payload":7},"queryCondition":"deviceId = 'dev1'"}`)
	before := th.waitJob(t, "done", "completed")
	later := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	th.createJob(t, "later", `{"type":"scheduleUpdateTwin","updateTwin":{"tags":{"a":1}},"startTime":"`+later+`","queryCondition":"*"}`)
	th.waitJob(t, "later", "scheduled")
	th.createJob(t, "hangs", `{"type":"scheduleDeviceMethod","cloudToDeviceMethod":{"methodName":"m","responseTimeoutInSeconds":300},"queryCondition":"*"}`)
	select {
	case <-hung:
	case <-time.After(waitFor):
		t.Fatal("dev2 got no request")
	}
	testkit.Eventually(t, waitFor, "dev1 done, dev2 in flight", func() bool {
		j := th.getJob(t, "hangs")
		return j.Stats == jobStats{DeviceCount: 2, SucceededCount: 1, RunningCount: 1}
	})
	if err := th.Close(); err != nil {
		t.Fatal(err)
	}

	th = startHub(t, localhub.Options{Dir: dir})
	if after := th.getJob(t, "done"); !reflect.DeepEqual(after, before) {
		t.Errorf("finished job after the restart:\n%+v\nwant\n%+v", after, before)
	}
	if j := th.getJob(t, "later"); j.Status != "scheduled" {
		t.Errorf("scheduled job after the restart: %+v", j)
	}
	j := th.getJob(t, "hangs")
	if want := (jobStats{DeviceCount: 2, SucceededCount: 1, FailedCount: 1}); j.Status != "failed" || j.Stats != want || j.EndTime == "" || j.FailureReason == "" {
		t.Errorf("running job after the restart: %+v, want failed with %+v", j, want)
	}
	recs := th.jobRecords(t, "hangs")
	if r := recs["dev2"]; r.Status != "failed" || r.Error == nil || !strings.Contains(r.Error.Description, "restarted") {
		t.Errorf("record of the device in flight: %+v", r)
	}
	if r := recs["dev1"]; r.Status != "completed" || r.Outcome == nil || r.Outcome.DeviceMethodResponse == nil {
		t.Errorf("record of the finished device: %+v", r)
	}
}

// TestJobCancelRunning: with one device at a time, cancelling a running
// job lets the call in flight finish (completed) and cancels the device
// still pending; the statistics add up at every step.
func TestJobCancelRunning(t *testing.T) {
	th := startHub(t, localhub.Options{Devices: []string{"dev1", "dev2"}})
	th.SetJobWorkers(1)
	release := make(chan struct{})
	seen := th.mustConnect(t, "dev1").subscribe(t, 1, func(r request) (int, []byte, bool) {
		<-release
		return 200, []byte(`"late"`), true
	})
	th.mustConnect(t, "dev2").subscribe(t, 1, echo)
	th.createJob(t, "run-1", `{"type":"scheduleDeviceMethod","cloudToDeviceMethod":{"methodName":"m","responseTimeoutInSeconds":60},"queryCondition":"*"}`)
	select {
	case <-seen:
	case <-time.After(waitFor):
		t.Fatal("dev1 got no request")
	}
	if j := th.getJob(t, "run-1"); j.Status != "running" || j.Stats != (jobStats{DeviceCount: 2, RunningCount: 1, PendingCount: 1}) {
		t.Fatalf("while dev1 is called: %+v", j)
	}
	r := th.call(t, http.MethodPost, "/jobs/v2/run-1/cancel", nil)
	if j := decodeJob(t, r.body); r.status != http.StatusOK || j.Status != "cancelled" || j.Stats != (jobStats{DeviceCount: 2, RunningCount: 1, FailedCount: 1}) {
		t.Fatalf("cancel: %d %s", r.status, r.body)
	}
	close(release)
	testkit.Eventually(t, waitFor, "dev1's call recorded", func() bool {
		j := th.getJob(t, "run-1")
		return j.Stats == jobStats{DeviceCount: 2, SucceededCount: 1, FailedCount: 1} && j.EndTime != ""
	})
	recs := th.jobRecords(t, "run-1")
	if recs["dev1"].Status != "completed" || recs["dev2"].Status != "canceled" {
		t.Errorf("records: %+v", recs)
	}
	if j := th.getJob(t, "run-1"); j.Status != "cancelled" {
		t.Errorf("status after the call in flight ended: %s", j.Status)
	}
}

// TestJobMaxExecutionTime: a device still pending when the job's
// maxExecutionTimeInSeconds passes fails with JobTimeout, and so does the
// job; the call in flight keeps its own outcome.
func TestJobMaxExecutionTime(t *testing.T) {
	th := startHub(t, localhub.Options{Devices: []string{"dev1", "dev2"}})
	th.SetJobWorkers(1)
	release := make(chan struct{})
	th.mustConnect(t, "dev1").subscribe(t, 1, func(r request) (int, []byte, bool) {
		<-release
		return 200, nil, true
	})
	th.createJob(t, "slow", `{"type":"scheduleDeviceMethod","cloudToDeviceMethod":{"methodName":"m","responseTimeoutInSeconds":60},"maxExecutionTimeInSeconds":1,"queryCondition":"*"}`)
	testkit.Eventually(t, waitFor, "dev2 timed out", func() bool {
		return th.getJob(t, "slow").Stats == jobStats{DeviceCount: 2, RunningCount: 1, FailedCount: 1}
	})
	close(release)
	j := th.waitJob(t, "slow", "failed")
	if j.Stats != (jobStats{DeviceCount: 2, SucceededCount: 1, FailedCount: 1}) || !strings.Contains(j.FailureReason, "maxExecutionTimeInSeconds") {
		t.Errorf("job: %+v", j)
	}
	if r := th.jobRecords(t, "slow")["dev2"]; r.Status != "failed" || r.Error == nil || r.Error.Code != "JobTimeout" {
		t.Errorf("record of dev2: %+v", r)
	}
}

// TestJobStartsWhenDue: a job due in a second is scheduled, then runs.
func TestJobStartsWhenDue(t *testing.T) {
	th := startHub(t, localhub.Options{})
	seen := th.mustConnect(t, "dev1").subscribe(t, 1, echo)
	start := time.Now().Add(time.Second).UTC().Format(time.RFC3339Nano)
	th.createJob(t, "soon", `{"type":"scheduleDeviceMethod","cloudToDeviceMethod":{"methodName":"m"},"startTime":"`+start+`","queryCondition":"deviceId = 'dev1'"}`)
	if j := th.getJob(t, "soon"); j.Status != "queued" && j.Status != "scheduled" {
		t.Errorf("right after creation: %s", j.Status)
	}
	select {
	case r := <-seen:
		t.Fatalf("called before the start time: %+v", r)
	default:
	}
	if j := th.waitJob(t, "soon", "completed"); j.Stats.SucceededCount != 1 {
		t.Errorf("job: %+v", j)
	}
}
