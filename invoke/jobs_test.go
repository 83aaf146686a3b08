package invoke

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/methodd/methodd/iothub"
)

// jobsServer is a TLS server that records every request and answers with
// reply, which may set headers and write what it likes.
type jobsServer struct {
	srv *httptest.Server

	mu       sync.Mutex
	requests []recordedTwin
}

func newJobsServer(t *testing.T, reply func(n int, w http.ResponseWriter, r *http.Request, body []byte)) *jobsServer {
	s := &jobsServer{}
	s.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.requests = append(s.requests, recordedTwin{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, r.Header.Clone(), body, r.ContentLength})
		n := len(s.requests)
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		reply(n, w, r, body)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *jobsServer) recorded() []recordedTwin {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]recordedTwin(nil), s.requests...)
}

func (s *jobsServer) client(t *testing.T) *Client {
	t.Helper()
	c, err := NewClient(iothub.ConnectionString{HostName: s.srv.Listener.Addr().String(), SharedAccessKeyName: "iothubowner", SharedAccessKey: testKey},
		ClientOptions{HTTPClient: s.srv.Client(), UserAgent: "methodd/test",
			Retry: RetryPolicy{MaxAttempts: 5, Base: time.Millisecond, Max: 5 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// writeError answers with the hub's error body for code.
func writeError(w http.ResponseWriter, code int) {
	e := iothub.NewError(code, "scripted")
	w.Header().Set(iothub.ErrorCodeHeader, e.Name)
	w.WriteHeader(e.HTTPStatus)
	_, _ = w.Write(e.Body())
}

func TestCreateMethodJobSendsTheProtocolRequest(t *testing.T) {
	const answer = `{"jobId":"job-1","type":"scheduleDeviceMethod","status":"queued"}`
	s := newJobsServer(t, func(_ int, w http.ResponseWriter, _ *http.Request, _ []byte) { _, _ = io.WriteString(w, answer) })
	c := s.client(t)
	start := time.Date(2026, 1, 1, 1, 0, 0, 0, time.FixedZone("CET", 3600))
	cases := []struct {
		name    string
		payload json.RawMessage
		timeout time.Duration
		start   time.Time
		want    string
	}{
		{"all fields", json.RawMessage("{\"delay\": 1,\n \"s\":\"x\"}"), 15 * time.Second, start,
			`{"jobId":"job-1","type":"scheduleDeviceMethod","cloudToDeviceMethod":{"methodName":"reboot","payload":{"delay":1,"s":"x"},"responseTimeoutInSeconds":15},"startTime":"2026-01-01T00:00:00.000Z","queryCondition":"tags.site = 'a'"}`},
		{"defaults", nil, 0, time.Time{},
			`{"jobId":"job-1","type":"scheduleDeviceMethod","cloudToDeviceMethod":{"methodName":"reboot","payload":null,"responseTimeoutInSeconds":30},"startTime":null,"queryCondition":"tags.site = 'a'"}`},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			job, err := c.CreateMethodJob(context.Background(), "job-1", "tags.site = 'a'", "reboot", tc.payload, tc.timeout, tc.start)
			if err != nil {
				t.Fatal(err)
			}
			if job.JobID != "job-1" || job.Status != JobQueued || job.Type != JobTypeMethod || string(job.Raw) != answer {
				t.Errorf("got %+v, want the queued job with the hub's bytes", job)
			}
			r := s.recorded()[i]
			if r.Method != http.MethodPut || r.EscapedPath != "/jobs/v2/job-1" || r.Query != iothub.MethodsQuery {
				t.Errorf("got %s %s?%s, want PUT /jobs/v2/job-1?%s", r.Method, r.EscapedPath, r.Query, iothub.MethodsQuery)
			}
			if string(r.Body) != tc.want {
				t.Errorf("got body\n%s\nwant\n%s", r.Body, tc.want)
			}
			if ct := r.Header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
				t.Errorf("Content-Type %q", ct)
			}
			checkServiceHeaders(t, r.Header, s.srv.Listener.Addr().String())
		})
	}
}

func TestCreateTwinJobBody(t *testing.T) {
	s := newJobsServer(t, func(_ int, w http.ResponseWriter, _ *http.Request, _ []byte) {
		_, _ = io.WriteString(w, `{"jobId":"t1","type":"scheduleUpdateTwin","status":"queued"}`)
	})
	_, err := s.client(t).CreateTwinJob(context.Background(), "t1", "*", []byte(`{"etag":"*", "tags":{"t":1}}`), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"jobId":"t1","type":"scheduleUpdateTwin","updateTwin":{"etag":"*","tags":{"t":1}},"startTime":null,"queryCondition":"*"}`
	if got := string(s.recorded()[0].Body); got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestCreateJobRefusesBadInputWithoutARequest(t *testing.T) {
	s := newJobsServer(t, func(_ int, w http.ResponseWriter, _ *http.Request, _ []byte) { _, _ = io.WriteString(w, `{}`) })
	c := s.client(t)
	big := json.RawMessage(`"` + strings.Repeat("x", iothub.MaxPayloadBytes) + `"`)
	cases := []struct {
		name, id, cond, method string
		payload                json.RawMessage
	}{
		{"id too long", strings.Repeat("a", 65), "*", "m", nil},
		{"id with space", "job 1", "*", "m", nil},
		{"id with underscore", "job_1", "*", "m", nil},
		{"empty id", "", "*", "m", nil},
		{"empty condition", "j", " ", "m", nil},
		{"bad method", "j", "*", "a/b", nil},
		{"payload too big", "j", "*", "m", big},
		{"payload not JSON", "j", "*", "m", json.RawMessage("{")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.CreateMethodJob(context.Background(), tc.id, tc.cond, tc.method, tc.payload, 0, time.Time{})
			if !errors.Is(err, ErrJob) {
				t.Errorf("got %v, want ErrJob", err)
			}
		})
	}
	if _, err := c.CreateTwinJob(context.Background(), "j", "*", []byte(`[]`), time.Time{}); !errors.Is(err, ErrJob) {
		t.Errorf("twin job with an array: got %v, want ErrJob", err)
	}
	if n := len(s.recorded()); n != 0 {
		t.Errorf("got %d requests, want none", n)
	}
}

func TestGetAndCancelJob(t *testing.T) {
	const doc = `{"jobId":"j-1","type":"scheduleDeviceMethod","status":"running","queryCondition":"*",` +
		`"deviceJobStatistics":{"deviceCount":5,"failedCount":1,"succeededCount":2,"runningCount":1,"pendingCount":1}}`
	s := newJobsServer(t, func(n int, w http.ResponseWriter, r *http.Request, _ []byte) {
		switch {
		case n == 1:
			writeError(w, iothub.CodeServiceUnavailable)
		case strings.HasSuffix(r.URL.Path, "/nope"):
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"Message":"ErrorCode:JobNotFound;no such job"}`)
		default:
			_, _ = io.WriteString(w, doc)
		}
	})
	c := s.client(t)
	job, err := c.GetJob(context.Background(), "j-1")
	if err != nil {
		t.Fatal(err)
	}
	want := JobStatistics{DeviceCount: 5, FailedCount: 1, SucceededCount: 2, RunningCount: 1, PendingCount: 1}
	if job.Statistics == nil || *job.Statistics != want || job.Done() || string(job.Raw) != doc {
		t.Errorf("got %+v stats %+v, want running with %+v", job, job.Statistics, want)
	}
	if _, err := c.CancelJob(context.Background(), "j-1"); err != nil {
		t.Fatal(err)
	}
	_, err = c.GetJob(context.Background(), "nope")
	var he *iothub.Error
	if !errors.As(err, &he) || he.HTTPStatus != http.StatusNotFound {
		t.Errorf("unknown job: got %v, want a 404 *iothub.Error", err)
	}
	rec := s.recorded()
	if len(rec) != 4 {
		t.Fatalf("got %d requests, want 4 (a 503 retried, cancel, get)", len(rec))
	}
	if r := rec[2]; r.Method != http.MethodPost || r.EscapedPath != "/jobs/v2/j-1/cancel" || len(r.Body) != 0 || r.Header.Get("Content-Type") != "" {
		t.Errorf("cancel: got %s %s body %q Content-Type %q, want POST /jobs/v2/j-1/cancel without a body", r.Method, r.EscapedPath, r.Body, r.Header.Get("Content-Type"))
	}
	if r := rec[1]; r.Method != http.MethodGet || r.EscapedPath != "/jobs/v2/j-1" {
		t.Errorf("get: got %s %s", r.Method, r.EscapedPath)
	}
}

func TestJobDone(t *testing.T) {
	for status, want := range map[string]bool{JobQueued: false, JobScheduled: false, JobRunning: false, JobCompleted: true, JobFailed: true, JobCancelled: true, "canceled": false} {
		if got := (Job{Status: status}).Done(); got != want {
			t.Errorf("Done(%s) = %v, want %v", status, got, want)
		}
	}
}

func TestListJobsFollowsContinuation(t *testing.T) {
	s := newJobsServer(t, func(n int, w http.ResponseWriter, _ *http.Request, _ []byte) {
		if n == 1 {
			w.Header().Set("x-ms-continuation", "tok 1")
			_, _ = io.WriteString(w, `[{"jobId":"a","type":"scheduleDeviceMethod","status":"completed"},{"jobId":"b","type":"scheduleDeviceMethod","status":"completed"}]`)
			return
		}
		_, _ = io.WriteString(w, `[{"jobId":"c","type":"scheduleDeviceMethod","status":"completed"}]`)
	})
	jobs, err := s.client(t).ListJobs(context.Background(), JobTypeMethod, JobCompleted)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, j := range jobs {
		ids = append(ids, j.JobID)
	}
	if strings.Join(ids, ",") != "a,b,c" {
		t.Errorf("got jobs %v, want a,b,c", ids)
	}
	rec := s.recorded()
	if len(rec) != 2 {
		t.Fatalf("got %d requests, want 2", len(rec))
	}
	if r := rec[0]; r.Method != http.MethodGet || r.EscapedPath != "/jobs/v2/query" ||
		r.Query != "api-version="+iothub.APIVersion+"&jobStatus=completed&jobType=scheduleDeviceMethod" {
		t.Errorf("got %s %s?%s", r.Method, r.EscapedPath, r.Query)
	}
	if got := rec[0].Header.Values("x-ms-continuation"); len(got) != 0 {
		t.Errorf("first page sent a continuation %q", got)
	}
	if got := rec[1].Header.Get("x-ms-continuation"); got != "tok 1" {
		t.Errorf("second page sent continuation %q, want the hub's %q", got, "tok 1")
	}
	if got := rec[0].Header.Get("x-ms-max-item-count"); got != "100" {
		t.Errorf("page size %q, want 100", got)
	}
}

func TestJobRecordsQueryAndOrder(t *testing.T) {
	s := newJobsServer(t, func(n int, w http.ResponseWriter, _ *http.Request, _ []byte) {
		if n == 1 {
			w.Header().Set("x-ms-continuation", "next")
			_, _ = io.WriteString(w, `[{"deviceId":"c","jobId":"j","jobType":"scheduleDeviceMethod","status":"completed","outcome":{"deviceMethodResponse":{"status":200,"payload":1}}}]`)
			return
		}
		_, _ = io.WriteString(w, `[{"deviceId":"a","jobId":"j","jobType":"scheduleDeviceMethod","status":"failed","error":{"code":"DeviceNotOnline","description":"offline"}},`+
			`{"deviceId":"b","jobId":"j","jobType":"scheduleDeviceMethod","status":"completed","outcome":{"deviceMethodResponse":{"status":500,"payload":null}}}]`)
	})
	recs, err := s.client(t).JobRecords(context.Background(), "j")
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, r := range recs {
		lines = append(lines, string(r.Outcome().Line()))
	}
	want := []string{
		`{"device":"a","error":{"code":404103,"message":"offline"}}`,
		`{"device":"b","status":500,"payload":null}`,
		`{"device":"c","status":200,"payload":1}`,
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	rec := s.recorded()
	if len(rec) != 2 {
		t.Fatalf("got %d requests, want 2", len(rec))
	}
	wantBody := `{"query":"SELECT * FROM devices.jobs WHERE devices.jobs.jobId = 'j'"}`
	for i, r := range rec {
		if r.Method != http.MethodPost || r.EscapedPath != "/devices/query" || string(r.Body) != wantBody {
			t.Errorf("request %d: got %s %s %s, want POST /devices/query %s", i, r.Method, r.EscapedPath, r.Body, wantBody)
		}
	}
	if rec[1].Header.Get("x-ms-continuation") != "next" {
		t.Errorf("second page without the continuation")
	}
}

func TestJobRecordsMalformedPage(t *testing.T) {
	s := newJobsServer(t, func(_ int, w http.ResponseWriter, _ *http.Request, _ []byte) {
		_, _ = io.WriteString(w, `{"items":[]}`)
	})
	if _, err := s.client(t).JobRecords(context.Background(), "j"); !errors.Is(err, ErrMalformedQueryPage) {
		t.Errorf("got %v, want ErrMalformedQueryPage", err)
	}
	s = newJobsServer(t, func(_ int, w http.ResponseWriter, _ *http.Request, _ []byte) {
		_, _ = io.WriteString(w, `[{"jobId":"j"}]`)
	})
	if _, err := s.client(t).JobRecords(context.Background(), "j"); !errors.Is(err, ErrMalformedJob) {
		t.Errorf("a record without deviceId: got %v, want ErrMalformedJob", err)
	}
	s = newJobsServer(t, func(_ int, w http.ResponseWriter, _ *http.Request, _ []byte) {
		w.Header().Set("x-ms-continuation", "same")
		_, _ = io.WriteString(w, `[]`)
	})
	if _, err := s.client(t).ListJobs(context.Background(), "", ""); !errors.Is(err, ErrMalformedJob) {
		t.Errorf("a repeated continuation token: got %v, want ErrMalformedJob", err)
	}
	if n := len(s.recorded()); n != 2 {
		t.Errorf("got %d requests for a repeated token, want 2", n)
	}
}

func TestDeviceJobOutcome(t *testing.T) {
	cases := []struct {
		name, rec, line string
		kind            Kind
		latency         time.Duration
	}{
		{"method 200", `{"deviceId":"d","status":"completed","jobType":"scheduleDeviceMethod","startTimeUtc":"2026-01-01T00:00:00.5","endTimeUtc":"2026-01-01T00:00:01Z","outcome":{"deviceMethodResponse":{"status":200,"payload":{"a":[1, 2]}}}}`,
			`{"device":"d","status":200,"payload":{"a":[1, 2]}}`, KindOK, 500 * time.Millisecond},
		{"module 418 without payload", `{"deviceId":"d","moduleId":"m","status":"completed","outcome":{"deviceMethodResponse":{"status":418}}}`,
			`{"device":"d/m","status":418,"payload":null}`, KindDeviceError, 0},
		{"offline", `{"deviceId":"d","status":"failed","error":{"code":"DeviceNotOnline","description":"the device is not online"}}`,
			`{"device":"d","error":{"code":404103,"message":"the device is not online"}}`, KindUnreachable, 0},
		{"numeric timeout", `{"deviceId":"d","status":"failed","error":{"code":"504101","description":"timed out"}}`,
			`{"device":"d","error":{"code":504101,"message":"timed out"}}`, KindTimeout, 0},
		{"unknown name", `{"deviceId":"d","status":"failed","error":{"code":"Weird","description":"odd"}}`,
			`{"device":"d","error":{"code":0,"message":"Weird: odd"}}`, KindError, 0},
		{"canceled", `{"deviceId":"d","status":"canceled"}`,
			`{"device":"d","error":{"code":0,"message":"device job status \"canceled\" without a result"}}`, KindError, 0},
		{"twin completed", `{"deviceId":"d","status":"completed","jobType":"scheduleUpdateTwin","outcome":{"deviceMethodResponse":null}}`,
			`{"device":"d","status":200,"payload":null}`, KindOK, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var d DeviceJob
			if err := json.Unmarshal([]byte(tc.rec), &d); err != nil {
				t.Fatal(err)
			}
			o := d.Outcome()
			if got := string(o.Line()); got != tc.line {
				t.Errorf("got line %s, want %s", got, tc.line)
			}
			if o.Kind() != tc.kind {
				t.Errorf("got kind %s, want %s", o.Kind(), tc.kind)
			}
			if o.Latency != tc.latency {
				t.Errorf("got latency %v, want %v", o.Latency, tc.latency)
			}
		})
	}
}

func TestValidJobID(t *testing.T) {
	cases := map[string]bool{
		"a": true, "Job-01": true, strings.Repeat("x", 64): true,
		"": false, strings.Repeat("x", 65): false, "a b": false, "a_b": false, "a/b": false, "ä": false, "a.b": false,
	}
	for id, want := range cases {
		if got := ValidJobID(id); got != want {
			t.Errorf("ValidJobID(%q) = %v, want %v", id, got, want)
		}
	}
}

func TestNewJobID(t *testing.T) {
	now := time.Date(2026, 11, 29, 14, 5, 9, 0, time.FixedZone("X", 3600))
	a, b := NewJobID(now), NewJobID(now)
	if !regexp.MustCompile(`^methodd-20261129-130509-[0-9a-f]{8}$`).MatchString(a) {
		t.Errorf("got %q, want methodd-20261129-130509-HEX8", a)
	}
	if !ValidJobID(a) || a == b {
		t.Errorf("got %q and %q, want two different valid ids", a, b)
	}
}
