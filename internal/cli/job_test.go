package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/methodd/methodd/invoke"
	"github.com/methodd/methodd/iothub"
)

// runJob runs `methodd job args...` in-process with a 1 ms polling
// interval and returns what it produced.
func runJob(ctx context.Context, getenv func(string) string, args ...string) invokeResult {
	var out, errb bytes.Buffer
	c := &jobCmd{env: Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Getenv: getenv}, poll: time.Millisecond}
	code := exitCode(c.Run(ctx, args), &errb)
	return invokeResult{code, out.String(), errb.String()}
}

func noEnv(string) string { return "" }

func TestParseStart(t *testing.T) {
	now := time.Date(2026, 11, 29, 13, 0, 0, 0, time.UTC)
	good := []struct {
		in   string
		want time.Time
	}{
		{"", time.Time{}},
		{"+10m", now.Add(10 * time.Minute)},
		{"+1h30m", now.Add(90 * time.Minute)},
		{"+0s", now},
		{"+600", now.Add(10 * time.Minute)},
		{"+1.5", now.Add(1500 * time.Millisecond)},
		{"2026-12-01T08:00:00Z", time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)},
		{"2026-12-01T09:00:00+01:00", time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)},
	}
	for _, tc := range good {
		got, err := parseStart(tc.in, now)
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("parseStart(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"10m", "+", "+x", "+-5m", "+-5", "+1e3", "2026-12-01", "2026-12-01T08:00:00", "tomorrow"} {
		if _, err := parseStart(in, now); err == nil {
			t.Errorf("parseStart(%q): got no error", in)
		}
	}
}

func TestJobCreatePlan(t *testing.T) {
	now := time.Date(2026, 11, 29, 13, 4, 5, 0, time.UTC)
	c := &jobCmd{env: Env{Stdin: strings.NewReader(`{"from":"stdin"}`)}, now: func() time.Time { return now }}
	p, err := c.plan(jobFlags{where: " tags.site = 'a' ", timeout: 30 * time.Second, start: "+1h"}, []string{"reboot", "-"})
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^methodd-20261129-130405-[0-9a-f]{8}$`).MatchString(p.id) {
		t.Errorf("generated id %q, want methodd-20261129-130405-HEX8", p.id)
	}
	if p.where != "tags.site = 'a'" || p.method != "reboot" || string(p.payload) != `{"from":"stdin"}` || !p.start.Equal(now.Add(time.Hour)) || p.timeout != 30*time.Second {
		t.Errorf("got %+v", p)
	}
	p, err = c.plan(jobFlags{where: "*", id: "my-job-1", timeout: 5 * time.Second}, []string{"ping"})
	if err != nil || p.id != "my-job-1" || p.payload != nil || !p.start.IsZero() {
		t.Errorf("got %+v, %v; want id my-job-1, null payload, start now", p, err)
	}
}

// TestJobUsageErrors checks that every input error exits 2 before any
// request: no hub is configured, so a request would fail otherwise.
func TestJobUsageErrors(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no subcommand", nil, "want a subcommand"},
		{"unknown subcommand", []string{"start"}, "unknown subcommand"},
		{"no --where", []string{"create", "ping"}, "--where is required"},
		{"a whole query", []string{"create", "--where", "SELECT * FROM devices WHERE tags.a = 1", "ping"}, "condition only"},
		{"bad id", []string{"create", "--where", "*", "--id", "job_1", "ping"}, "--id"},
		{"long id", []string{"create", "--where", "*", "--id", strings.Repeat("a", 65), "ping"}, "--id"},
		{"bad start", []string{"create", "--where", "*", "--start", "soon", "ping"}, "--start"},
		{"bad timeout", []string{"create", "--where", "*", "--timeout", "2s", "ping"}, "--timeout"},
		{"no method", []string{"create", "--where", "*"}, "want METHOD [PAYLOAD]"},
		{"too many arguments", []string{"create", "--where", "*", "ping", "1", "2"}, "want METHOD [PAYLOAD]"},
		{"bad method", []string{"create", "--where", "*", "a/b"}, "not a valid method name"},
		{"bad payload", []string{"create", "--where", "*", "ping", "{"}, "not valid JSON"},
		{"local and connection string", []string{"create", "--local", "--connection-string", "x", "--where", "*", "ping"}, "exclude each other"},
		{"unknown flag", []string{"create", "--bogus"}, ""},
		{"show without id", []string{"show"}, "want one job ID"},
		{"show bad id", []string{"show", "a b"}, "not a job id"},
		{"show bad output", []string{"show", "-o", "yaml", "j"}, "-o"},
		{"cancel two ids", []string{"cancel", "a", "b"}, "want one job ID"},
		{"results without id", []string{"results"}, "want one job ID"},
		{"list bad type", []string{"list", "--type", "scheduleDirectMethod"}, "--type"},
		{"list bad status", []string{"list", "--status", "canceled"}, "--status"},
		{"list argument", []string{"list", "x"}, "unexpected argument"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := runJob(context.Background(), noEnv, tc.args...)
			if r.code != exitUsage || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("exit %d, want 2 with %q in stderr:\n%s", r.code, tc.want, r.stderr)
			}
			if r.stdout != "" {
				t.Errorf("stdout %q, want nothing", r.stdout)
			}
		})
	}
	if r := runJob(context.Background(), noEnv, "help"); r.code != exitOK || !strings.Contains(r.stderr, "usage: methodd job create") {
		t.Errorf("help: exit %d, stderr %q", r.code, r.stderr)
	}
	// Without any hub, the first request cannot be made: usage error too.
	if r := runJob(context.Background(), noEnv, "show", "j"); r.code != exitUsage || !strings.Contains(r.stderr, "no hub") {
		t.Errorf("no hub: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestJobProgressLine(t *testing.T) {
	cases := []struct {
		job  invoke.Job
		want string
	}{
		{invoke.Job{JobID: "j", Status: "queued"}, "job j queued"},
		{invoke.Job{Status: "running", Statistics: &invoke.JobStatistics{DeviceCount: 1000, SucceededCount: 500, FailedCount: 12, RunningCount: 3}},
			"[##########..........] 512/1000 succeeded 500 failed 12 running 3"},
		{invoke.Job{Status: "completed", Statistics: &invoke.JobStatistics{DeviceCount: 2, SucceededCount: 2}},
			"[####################] 2/2 succeeded 2 failed 0 running 0"},
		{invoke.Job{JobID: "j", Status: "running", Statistics: &invoke.JobStatistics{}}, "job j running"},
		{invoke.Job{JobID: "j", Status: "scheduled", StartTime: "2026-01-01T00:00:00Z", Statistics: &invoke.JobStatistics{}},
			"job j scheduled to start at 2026-01-01T00:00:00Z"},
		{invoke.Job{Status: "running", Statistics: &invoke.JobStatistics{DeviceCount: 3, SucceededCount: 1}},
			"[######..............] 1/3 succeeded 1 failed 0 running 0"},
	}
	for _, tc := range cases {
		if got := progressLine(tc.job); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}

func TestJobProgressDrawsAndClears(t *testing.T) {
	var b bytes.Buffer
	p := &jobProgress{w: &b}
	p.clear() // nothing drawn yet: nothing to clear
	p.draw(invoke.Job{Status: "running", Statistics: &invoke.JobStatistics{DeviceCount: 4, SucceededCount: 1, FailedCount: 1, RunningCount: 2}})
	p.clear()
	want := "\r\033[K[##########..........] 2/4 succeeded 1 failed 1 running 2\r\033[K"
	if b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
	var none bytes.Buffer
	q := newJobProgress(&none) // not a terminal
	q.draw(invoke.Job{Status: "running"})
	q.clear()
	if none.Len() != 0 {
		t.Errorf("drew %q on a non-terminal", none.String())
	}
}

func TestJobExit(t *testing.T) {
	cases := []struct {
		err  error
		want int
	}{
		{iothub.ParseError(404, "", []byte(`{"Message":"ErrorCode:JobNotFound;no"}`)), exitUnreachable},
		{iothub.NewError(409001, "exists"), exitUsage},
		{&iothub.Error{HTTPStatus: 400, Name: "BadRequest"}, exitUsage},
		{fmt.Errorf("x: %w", invoke.ErrJob), exitUsage},
		{iothub.NewError(iothub.CodeUnauthorized, "no"), exitHubError},
		{iothub.NewError(iothub.CodeThrottled, "slow down"), exitHubError},
		{errors.New("dial tcp: refused"), exitHubError},
	}
	for _, tc := range cases {
		var ee *exitError
		if !errors.As(jobExit(tc.err), &ee) || ee.code != tc.want {
			t.Errorf("jobExit(%v): got %v, want exit %d", tc.err, ee, tc.want)
		}
	}
}

// fakeJobsHub is a scripted jobs API: GET of the job answers statuses[i]
// on the i-th GET (the last repeats); onGet, when set, is called with the
// GET count before answering.
type fakeJobsHub struct {
	srv     *httptest.Server
	caFile  string
	records string // JSON array of device records

	mu       sync.Mutex
	statuses []string
	gets     int
	onGet    func(n int)
	created  []string // PUT bodies
	cancels  int
}

func newFakeJobsHub(t *testing.T, records string, statuses ...string) *fakeJobsHub {
	h := &fakeJobsHub{records: records, statuses: statuses}
	h.srv = httptest.NewTLSServer(http.HandlerFunc(h.serve))
	t.Cleanup(h.srv.Close)
	h.caFile = filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: h.srv.Certificate().Raw})
	if err := os.WriteFile(h.caFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	return h
}

// args are the hub flags that reach the fake hub.
func (h *fakeJobsHub) args() []string {
	cs := "HostName=" + h.srv.Listener.Addr().String() + ";SharedAccessKeyName=iothubowner;SharedAccessKey=c2VjcmV0"
	return []string{"--connection-string", cs, "--ca-file", h.caFile}
}

func (h *fakeJobsHub) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case r.Method == http.MethodPut:
		h.created = append(h.created, string(body))
		var j struct{ JobID string }
		if err := json.Unmarshal(body, &j); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, `{"jobId":%q,"type":"scheduleDeviceMethod","status":"queued"}`, j.JobID)
	case r.Method == http.MethodGet && r.URL.Path == "/jobs/v2/query":
		_, _ = io.WriteString(w, `[{"jobId":"a","type":"scheduleDeviceMethod","status":"completed"},{"jobId":"b","type":"scheduleDeviceMethod","status":"running"}]`)
	case r.Method == http.MethodGet && r.URL.Path == "/jobs/v2/missing":
		e := iothub.ParseError(404, "", []byte(`{"Message":"ErrorCode:JobNotFound;The job does not exist"}`))
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, `{"Message":"ErrorCode:JobNotFound;%s"}`, e.Message)
	case r.Method == http.MethodGet:
		h.gets++
		if h.onGet != nil {
			h.onGet(h.gets)
		}
		status := h.statuses[min(h.gets, len(h.statuses))-1]
		fmt.Fprintf(w, `{"jobId":%q,"type":"scheduleDeviceMethod","status":%q,"deviceJobStatistics":{"deviceCount":3,"failedCount":1,"succeededCount":2,"runningCount":0,"pendingCount":0}}`,
			strings.TrimPrefix(r.URL.Path, "/jobs/v2/"), status)
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/cancel"):
		h.cancels++
		_, _ = io.WriteString(w, `{"jobId":"j","type":"scheduleDeviceMethod","status":"cancelled"}`)
	case r.Method == http.MethodPost && r.URL.Path == "/devices/query":
		_, _ = io.WriteString(w, h.records)
	default:
		http.NotFound(w, r)
	}
}

const threeRecords = `[` +
	`{"deviceId":"c","jobId":"j","jobType":"scheduleDeviceMethod","status":"failed","error":{"code":"DeviceNotOnline","description":"offline"}},` +
	`{"deviceId":"a","jobId":"j","jobType":"scheduleDeviceMethod","status":"completed","outcome":{"deviceMethodResponse":{"status":200,"payload":{"n":1}}}},` +
	`{"deviceId":"b","jobId":"j","jobType":"scheduleDeviceMethod","status":"completed","outcome":{"deviceMethodResponse":{"status":200,"payload":null}}}]`

func TestJobCreateWaitPrintsFanOutLines(t *testing.T) {
	h := newFakeJobsHub(t, threeRecords, "queued", "running", "running", "completed")
	args := append([]string{"create"}, h.args()...)
	args = append(args, "--where", "tags.site = 'a'", "--id", "j", "echo", `{"x": 1}`, "--wait")
	r := runJob(context.Background(), noEnv, args...)
	if r.code != exitFailure {
		t.Errorf("exit %d, want 1 (a device was offline)\nstderr: %s", r.code, r.stderr)
	}
	want := `{"device":"a","status":200,"payload":{"n":1}}
{"device":"b","status":200,"payload":null}
{"device":"c","error":{"code":404103,"message":"offline"}}
`
	if r.stdout != want {
		t.Errorf("stdout\n%s\nwant\n%s", r.stdout, want)
	}
	if !strings.Contains(r.stderr, "job j completed; 3 calls: 2 ok, 0 device-error, 1 unreachable, 0 timeout, 0 error") {
		t.Errorf("stderr lacks the summary:\n%s", r.stderr)
	}
	if !strings.Contains(r.stderr, "methodd: job j queued; waiting") {
		t.Errorf("stderr does not name the job:\n%s", r.stderr)
	}
	if strings.Contains(r.stderr, "[") {
		t.Errorf("a progress bar was drawn on a non-terminal:\n%s", r.stderr)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.gets != 4 {
		t.Errorf("polled %d times, want 4 (until completed)", h.gets)
	}
	wantBody := `{"jobId":"j","type":"scheduleDeviceMethod","cloudToDeviceMethod":{"methodName":"echo","payload":{"x": 1},"responseTimeoutInSeconds":30},"startTime":null,"queryCondition":"tags.site = 'a'"}`
	if len(h.created) != 1 || h.created[0] != wantBody {
		t.Errorf("created %q, want one %s", h.created, wantBody)
	}
}

func TestJobResultsExitCodes(t *testing.T) {
	ok := `[{"deviceId":"a","status":"completed","outcome":{"deviceMethodResponse":{"status":204,"payload":null}}}]`
	pending := `[{"deviceId":"a","status":"completed","outcome":{"deviceMethodResponse":{"status":200,"payload":null}}},{"deviceId":"b","status":"pending"}]`
	hubErrors := `[{"deviceId":"a","status":"failed","error":{"code":"ServerError","description":"boom"}}]`
	cases := []struct {
		name, records, status string
		code                  int
		lines                 int
	}{
		{"all succeeded", ok, "completed", exitOK, 1},
		{"a device offline", threeRecords, "completed", exitFailure, 3},
		{"cancelled", ok, "cancelled", exitFailure, 1},
		{"not finished", pending, "running", exitFailure, 1},
		{"failed without records", `[]`, "failed", exitHubError, 0},
		{"only hub errors", hubErrors, "completed", exitHubError, 1},
		{"no device matched", `[]`, "completed", exitOK, 0},
		{"cancelled before any device ran", `[{"deviceId":"a","status":"canceled"}]`, "cancelled", exitFailure, 1},
		{"unreachable and hub errors", `[{"deviceId":"a","status":"failed","error":{"code":"404103","description":"offline"}},` +
			`{"deviceId":"b","status":"failed","error":{"code":"500001","description":"boom"}}]`, "completed", exitHubError, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newFakeJobsHub(t, tc.records, tc.status)
			r := runJob(context.Background(), noEnv, append(append([]string{"results"}, h.args()...), "j")...)
			if r.code != tc.code {
				t.Errorf("exit %d, want %d\nstderr: %s", r.code, tc.code, r.stderr)
			}
			if n := strings.Count(r.stdout, "\n"); n != tc.lines {
				t.Errorf("got %d lines, want %d:\n%s", n, tc.lines, r.stdout)
			}
		})
	}
}

func TestJobWaitInterruptedLeavesTheJob(t *testing.T) {
	h := newFakeJobsHub(t, threeRecords, "running")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h.onGet = func(n int) {
		if n == 3 {
			cancel() // Ctrl-C while the third poll is answered
		}
	}
	args := append(append([]string{"create"}, h.args()...), "--where", "*", "--id", "j", "--wait", "echo")
	r := runJob(ctx, noEnv, args...)
	if r.code != exitFailure || !strings.Contains(r.stderr, "stopped waiting; job j goes on") || !strings.Contains(r.stderr, "methodd job results j") {
		t.Errorf("exit %d, stderr %q; want 1 and how to follow the job", r.code, r.stderr)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cancels != 0 {
		t.Errorf("the job was cancelled %d times, want never", h.cancels)
	}
}

func TestJobShowListCancel(t *testing.T) {
	h := newFakeJobsHub(t, `[]`, "scheduled")
	show := runJob(context.Background(), noEnv, append(append([]string{"show"}, h.args()...), "j")...)
	if show.code != exitOK || !strings.Contains(show.stdout, `"status":"scheduled"`) || strings.Count(show.stdout, "\n") != 1 {
		t.Errorf("show: exit %d stdout %q stderr %q", show.code, show.stdout, show.stderr)
	}
	pretty := runJob(context.Background(), noEnv, append(append([]string{"show", "-o", "pretty"}, h.args()...), "j")...)
	if pretty.code != exitOK || !strings.Contains(pretty.stdout, "\n  \"status\": \"scheduled\"") {
		t.Errorf("show -o pretty: exit %d stdout %q", pretty.code, pretty.stdout)
	}
	missing := runJob(context.Background(), noEnv, append(append([]string{"show"}, h.args()...), "missing")...)
	if missing.code != exitUnreachable || missing.stdout != "" {
		t.Errorf("show missing: exit %d stdout %q, want 3 and nothing", missing.code, missing.stdout)
	}
	list := runJob(context.Background(), noEnv, append([]string{"list"}, h.args()...)...)
	wantList := `{"jobId":"a","type":"scheduleDeviceMethod","status":"completed"}
{"jobId":"b","type":"scheduleDeviceMethod","status":"running"}
`
	if list.code != exitOK || list.stdout != wantList {
		t.Errorf("list: exit %d stdout\n%s\nwant\n%s", list.code, list.stdout, wantList)
	}
	cancel := runJob(context.Background(), noEnv, append(append([]string{"cancel"}, h.args()...), "j")...)
	if cancel.code != exitOK || !strings.Contains(cancel.stdout, `"status":"cancelled"`) {
		t.Errorf("cancel: exit %d stdout %q", cancel.code, cancel.stdout)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cancels != 1 {
		t.Errorf("got %d cancels, want 1", h.cancels)
	}
}

// TestJobOnLocalHub runs a method job on the local hub over four devices:
// two echo, one answers 500, one is registered but offline.
func TestJobOnLocalHub(t *testing.T) {
	h := startTestHub(t, "jd-a", "jd-b", "jd-c", "jd-d")
	startDevices(t, h, []string{"jd-a", "jd-b", "jd-c"}, map[string]int{"jd-c": 500})
	hub := []string{"--local", "--hub-dir", h.dir}
	run := func(args ...string) invokeResult {
		t.Helper()
		return runJob(context.Background(), h.env(), append(append(args[:1:1], hub...), args[1:]...)...)
	}

	r := run("create", "--where", "deviceId IN ['jd-a', 'jd-b', 'jd-c', 'jd-d']", "--id", "e2e-1", "echo", `{"n": [1, 2]}`, "--wait")
	if r.code != exitFailure {
		t.Errorf("create --wait: exit %d, want 1\nstderr: %s", r.code, r.stderr)
	}
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	want := []string{
		`{"device":"jd-a","status":200,"payload":{"n":[1,2]}}`, // the hub keeps records compacted
		`{"device":"jd-b","status":200,"payload":{"n":[1,2]}}`,
		`{"device":"jd-c","status":500,"payload":{"error":"forced"}}`,
	}
	if len(lines) != 4 {
		t.Fatalf("got stdout\n%s\nwant four device lines", r.stdout)
	}
	for i, w := range want {
		if lines[i] != w {
			t.Errorf("line %d: got %s, want %s", i, lines[i], w)
		}
	}
	var offline struct {
		Device string
		Error  struct{ Code int }
	}
	if err := json.Unmarshal([]byte(lines[3]), &offline); err != nil || offline.Device != "jd-d" || offline.Error.Code != iothub.CodeDeviceNotOnline {
		t.Errorf("line 3: got %s, want jd-d with error 404103", lines[3])
	}
	if !strings.Contains(r.stderr, "job e2e-1 completed; 4 calls: 2 ok, 1 device-error, 1 unreachable, 0 timeout, 0 error") {
		t.Errorf("stderr lacks the summary:\n%s", r.stderr)
	}

	res := run("results", "e2e-1")
	if res.code != exitFailure || res.stdout != r.stdout {
		t.Errorf("results: exit %d, stdout\n%s\nwant exit 1 and the lines of --wait", res.code, res.stdout)
	}
	show := run("show", "e2e-1")
	var job invoke.Job
	if err := json.Unmarshal([]byte(show.stdout), &job); err != nil || show.code != exitOK {
		t.Fatalf("show: exit %d, stdout %q: %v", show.code, show.stdout, err)
	}
	if s := job.Statistics; job.Status != invoke.JobCompleted || s == nil || s.DeviceCount != 4 || s.SucceededCount+s.FailedCount != 4 {
		t.Errorf("show: got %+v with %+v, want completed with 4 devices done", job, job.Statistics)
	}
	list := run("list", "--type", "scheduleDeviceMethod", "--status", "completed")
	if list.code != exitOK || !strings.Contains(list.stdout, `"jobId":"e2e-1"`) {
		t.Errorf("list: exit %d, stdout %q", list.code, list.stdout)
	}
	if dup := run("create", "--where", "*", "--id", "e2e-1", "echo"); dup.code != exitUsage || !strings.Contains(dup.stderr, "409") {
		t.Errorf("duplicate id: exit %d, stderr %q; want 2 with the hub's 409", dup.code, dup.stderr)
	}
}

// TestJobScheduledAndCancelledOnLocalHub schedules a job an hour ahead,
// cancels it before it starts, and checks the answers around it.
func TestJobScheduledAndCancelledOnLocalHub(t *testing.T) {
	h := startTestHub(t, "jd-a")
	hub := []string{"--local", "--hub-dir", h.dir}
	run := func(args ...string) invokeResult {
		t.Helper()
		return runJob(context.Background(), h.env(), append(append(args[:1:1], hub...), args[1:]...)...)
	}
	c := run("create", "--where", "*", "--start", "+1h", "ping")
	var created invoke.Job
	if err := json.Unmarshal([]byte(c.stdout), &created); err != nil || c.code != exitOK || created.Status != invoke.JobQueued {
		t.Fatalf("create: exit %d, stdout %q, stderr %q", c.code, c.stdout, c.stderr)
	}
	if !invoke.ValidJobID(created.JobID) || !strings.HasPrefix(created.JobID, "methodd-") || !strings.Contains(c.stderr, "methodd job show "+created.JobID) {
		t.Errorf("generated id %q, stderr %q", created.JobID, c.stderr)
	}
	if cancel := run("cancel", created.JobID); cancel.code != exitOK || !strings.Contains(cancel.stdout, `"status":"cancelled"`) {
		t.Errorf("cancel: exit %d, stdout %q, stderr %q", cancel.code, cancel.stdout, cancel.stderr)
	}
	if show := run("show", created.JobID); show.code != exitOK || !strings.Contains(show.stdout, `"status":"cancelled"`) {
		t.Errorf("show after cancel: exit %d, stdout %q", show.code, show.stdout)
	}
	if again := run("cancel", created.JobID); again.code == exitOK {
		t.Errorf("cancelling a cancelled job: exit 0, stdout %q; want the hub's refusal", again.stdout)
	}
	if missing := run("show", "no-such-job"); missing.code != exitUnreachable {
		t.Errorf("unknown job: exit %d, stderr %q; want 3", missing.code, missing.stderr)
	}
	if res := run("results", created.JobID); res.code != exitFailure || res.stdout != "" {
		t.Errorf("results of a cancelled job before it started: exit %d, stdout %q; want 1 and no lines", res.code, res.stdout)
	}
}
