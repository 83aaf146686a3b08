//go:build linux

package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/methodd/methodd/internal/testkit"
)

// taskRID numbers the calls of these tests: Engine.Call answers a request
// id it has seen (with the same method and payload) from its memory.
var taskRID atomic.Int64

// tcall makes one call with a fresh request id and checks the reply
// contract.
func tcall(t testing.TB, s interface {
	Call(context.Context, Request) Reply
}, method, payload string) Reply {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rid := "task-" + strconv.FormatInt(taskRID.Add(1), 10)
	rep := s.Call(ctx, Request{Method: method, Payload: []byte(payload), RequestID: rid, DeviceID: "dev-1"})
	checkReply(t, rep)
	return rep
}

// taskDocOf decodes a taskStatus payload.
func taskDocOf(t testing.TB, rep Reply) taskDoc {
	t.Helper()
	var d taskDoc
	if err := json.Unmarshal(rep.Payload, &d); err != nil {
		t.Fatalf("task document %s: %v", rep.Payload, err)
	}
	return d
}

// startAsync calls an async method and returns its task id, checking the
// 202 {"taskId","status":"running"} answer.
func startAsync(t testing.TB, s interface {
	Call(context.Context, Request) Reply
}, method, payload string) string {
	t.Helper()
	rep := tcall(t, s, method, payload)
	var body map[string]string
	if err := json.Unmarshal(rep.Payload, &body); err != nil || rep.Status != 202 || body["status"] != TaskRunning || !taskIDPattern.MatchString(body["taskId"]) || len(body) != 2 {
		t.Fatalf("async call: got %d %s (%v), want 202 {taskId, status: running}", rep.Status, rep.Payload, err)
	}
	return body["taskId"]
}

// waitTask waits for task id of s to end and returns its document.
func waitTask(t testing.TB, s *Set, id string) (Reply, taskDoc) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep, ok := s.WaitTask(ctx, id)
	if !ok {
		t.Fatalf("task %s unknown", id)
	}
	d := taskDocOf(t, rep)
	if d.Status == TaskRunning {
		t.Fatalf("task %s still running after 30 s", id)
	}
	return rep, d
}

// gateFile is a file whose creation lets a test command go on.
func gateFile(t testing.TB) string { return filepath.Join(t.TempDir(), "gate") }

func idPayload(id string) string { return `{"taskId":"` + id + `"}` }

// TestAsyncTaskRunsPastTheCall: the call is answered 202 while the command
// is still running; taskStatus says running, then succeeded with the
// output, exit code and times.
func TestAsyncTaskRunsPastTheCall(t *testing.T) {
	gate := gateFile(t)
	s := mustParse(t, fmt.Sprintf(`version: 1
methods:
  update:
    async: true
    shell: 'echo fetching; while [ ! -e %s ]; do sleep 0.01; done; echo installed; echo warn >&2'
`, gate))
	eng := New(s)
	id := startAsync(t, eng, "update", "null")
	d := taskDocOf(t, tcall(t, eng, "taskStatus", idPayload(id)))
	if d.Status != TaskRunning || d.ExitCode != nil || d.EndedAt != nil || d.TaskID != id || d.Method != "update" || d.StartedAt.IsZero() {
		t.Fatalf("while running: %+v", d)
	}
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	rep, d := waitTask(t, s, id)
	if rep.Status != 200 || d.Status != TaskSucceeded || d.ExitCode == nil || *d.ExitCode != 0 || d.Stdout != "fetching\ninstalled\n" ||
		d.Stderr != "warn\n" || d.EndedAt == nil || d.EndedAt.Before(d.StartedAt) || d.Truncated {
		t.Fatalf("finished: %d %+v", rep.Status, d)
	}
	if got := taskDocOf(t, tcall(t, eng, "taskStatus", idPayload(id))); got.Status != TaskSucceeded || got.Stdout != d.Stdout {
		t.Fatalf("taskStatus after the end: %+v", got)
	}
}

// TestAsyncTaskOutcomes: a failing command is failed with its exit code,
// one past its timeout (which may exceed 300 s for async methods; here
// short) is timedOut, and a command that cannot start is failed with the
// reason.
func TestAsyncTaskOutcomes(t *testing.T) {
	s := mustParse(t, `version: 1
methods:
  fails:
    async: true
    shell: 'echo no >&2; exit 3'
  slow:
    async: true
    run: [sleep, "30"]
    timeout: 200ms
`)
	_, d := waitTask(t, s, startAsync(t, s, "fails", "null"))
	if d.Status != TaskFailed || d.ExitCode == nil || *d.ExitCode != 3 || d.Stderr != "no\n" {
		t.Errorf("fails: %+v", d)
	}
	_, d = waitTask(t, s, startAsync(t, s, "slow", "null"))
	if d.Status != TaskTimedOut || !strings.Contains(d.Error, "timed out after 200ms") {
		t.Errorf("slow: %+v", d)
	}
}

// TestAsyncTimeoutMayExceedTheCallCeiling: a timeout over 300 s is no
// warning on an async method (it is on a synchronous one).
func TestAsyncTimeoutMayExceedTheCallCeiling(t *testing.T) {
	s := mustParse(t, `version: 1
methods:
  update: {async: true, run: ["true"], timeout: 30m}
  sync: {run: ["true"], timeout: 30m}
`)
	var got []string
	for _, w := range s.Warnings() {
		got = append(got, w.Path)
	}
	if len(got) != 1 || got[0] != "methods.sync.timeout" {
		t.Errorf("warnings at %v, want only methods.sync.timeout", got)
	}
}

// TestTaskCancelKillsTheProcessGroup: taskCancel ends a running task as
// cancelled and kills its whole process group, a background child
// included; a second taskCancel is 409.
func TestTaskCancelKillsTheProcessGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	s := mustParse(t, fmt.Sprintf(`version: 1
methods:
  update:
    async: true
    shell: 'sleep 300 & echo $! > %s; wait'
    timeout: 10m
`, pidFile))
	eng := New(s)
	id := startAsync(t, eng, "update", "null")
	var pid int
	testkit.Eventually(t, 10*time.Second, "the background child's pid", func() bool {
		b, _ := os.ReadFile(pidFile)
		pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		return pid > 0
	})
	rep := tcall(t, eng, "taskCancel", idPayload(id))
	if d := taskDocOf(t, rep); rep.Status != 200 || d.Status != TaskCancelled || d.EndedAt == nil {
		t.Fatalf("taskCancel: %d %+v", rep.Status, d)
	}
	testkit.Eventually(t, 10*time.Second, "the background child to be gone", func() bool { return !alive(pid) })
	if rep := tcall(t, eng, "taskCancel", idPayload(id)); rep.Status != 409 {
		t.Errorf("second taskCancel: %d %s, want 409", rep.Status, rep.Payload)
	}
}

// alive reports whether pid runs (a zombie does not count: nothing runs).
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	_, rest, _ := strings.Cut(string(b), ") ")
	return !strings.HasPrefix(rest, "Z")
}

// TestTaskReloadKeepsRunningTasks: a reload (a new Set swapped in) keeps a
// running task; the new Set reports it and it completes.
func TestTaskReloadKeepsRunningTasks(t *testing.T) {
	gate := gateFile(t)
	src := fmt.Sprintf(`version: 1
methods:
  update:
    async: true
    shell: 'while [ ! -e %s ]; do sleep 0.01; done; echo done'
`, gate)
	eng := New(mustParse(t, src))
	id := startAsync(t, eng, "update", "null")
	next := mustParse(t, src+"  other: {reply: {payload: '1'}}\n")
	eng.Swap(next)
	if d := taskDocOf(t, tcall(t, eng, "taskStatus", idPayload(id))); d.Status != TaskRunning {
		t.Fatalf("after the reload: %+v", d)
	}
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, d := waitTask(t, next, id); d.Status != TaskSucceeded || d.Stdout != "done\n" {
		t.Fatalf("after the reload, finished: %+v", d)
	}
}

// TestTaskBuiltinsRefuseBadIDs: taskStatus and taskCancel without a taskId
// or with a malformed one are 400 naming taskId; an unknown one is 404.
func TestTaskBuiltinsRefuseBadIDs(t *testing.T) {
	eng := New(mustParse(t, "version: 1\nmethods:\n  u: {async: true, run: [\"true\"]}\n"))
	for _, m := range []string{"taskStatus", "taskCancel"} {
		for payload, want := range map[string]int{
			`null`: 400, `{}`: 400, `{"taskId": 7}`: 400, `{"taskId": "../x"}`: 400,
			`{"taskId": "0123456789abcdef0123456789abcdef"}`: 404,
		} {
			rep := tcall(t, eng, m, payload)
			var body errorBody
			_ = json.Unmarshal(rep.Payload, &body)
			if rep.Status != want || body.Param != "taskId" {
				t.Errorf("%s %s: got %d %s, want %d naming taskId", m, payload, rep.Status, rep.Payload, want)
			}
		}
	}
}

// TestTaskRetention: finished tasks beyond tasks.max, or older than
// tasks.keep, are forgotten (404); running ones never are.
func TestTaskRetention(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	opts := testOptions()
	opts.Now = func() time.Time { return time.Unix(0, now.Load()) }
	s := mustParse(t, "version: 1\ntasks: {keep: 1h, max: 2}\nmethods:\n  u: {async: true, run: [\"true\"]}\n", opts)
	var ids []string
	for range 3 {
		id := startAsync(t, s, "u", "null")
		waitTask(t, s, id)
		ids = append(ids, id)
	}
	for i, want := range []int{404, 200, 200} {
		if rep := tcall(t, s, "taskStatus", idPayload(ids[i])); rep.Status != want {
			t.Errorf("task %d of 3 with max 2: %d, want %d", i+1, rep.Status, want)
		}
	}
	now.Add(int64(time.Hour))
	if rep := tcall(t, s, "taskStatus", idPayload(ids[2])); rep.Status != 404 {
		t.Errorf("a task ended an hour ago with keep 1h: %d, want 404", rep.Status)
	}
}

// TestTaskConcurrencyCountsRunningTasks: with concurrency 1, a second call
// while the task runs is 429; once it has ended, the method takes calls.
func TestTaskConcurrencyCountsRunningTasks(t *testing.T) {
	gate := gateFile(t)
	s := mustParse(t, fmt.Sprintf(`version: 1
methods:
  update:
    async: true
    concurrency: 1
    shell: 'while [ ! -e %s ]; do sleep 0.01; done'
`, gate))
	id := startAsync(t, s, "update", "null")
	if rep := tcall(t, s, "update", "null"); rep.Status != 429 {
		t.Fatalf("second call while the task runs: %d %s, want 429", rep.Status, rep.Payload)
	}
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	waitTask(t, s, id)
	waitTask(t, s, startAsync(t, s, "update", "null"))
}

// TestTaskReplyExpressions: the method's reply expressions apply to the
// finished task's status reply: reply.status is its status, reply.payload
// its result.
func TestTaskReplyExpressions(t *testing.T) {
	s := mustParse(t, `version: 1
methods:
  update:
    async: true
    shell: 'echo 1.2.3'
    reply:
      status: 'exitCode == 0 ? 201 : 500'
      payload: '{"version": trim(stdout), "code": exitCode}'
`)
	rep, d := waitTask(t, s, startAsync(t, s, "update", "null"))
	if rep.Status != 201 || d.Status != TaskSucceeded || compactJSON(t, string(d.Result)) != `{"code":0,"version":"1.2.3"}` {
		t.Fatalf("got %d %+v (result %s)", rep.Status, d, d.Result)
	}
	// Without reply.status, a failed task's status reply is still 200: the
	// question (what became of the task) was answered.
	s = mustParse(t, "version: 1\nmethods:\n  u: {async: true, shell: 'exit 2', reply: {payload: '{\"code\": exitCode}'}}\n")
	rep, d = waitTask(t, s, startAsync(t, s, "u", "null"))
	if rep.Status != 200 || d.Status != TaskFailed || compactJSON(t, string(d.Result)) != `{"code":2}` {
		t.Fatalf("failed task with reply.payload only: got %d %+v (result %s)", rep.Status, d, d.Result)
	}
}

// TestTaskOutputFitsAReply: a task with more output than a reply holds
// reports it cut, marked truncated, in valid JSON under 128 KB.
func TestTaskOutputFitsAReply(t *testing.T) {
	s := mustParse(t, "version: 1\nmethods:\n  big: {async: true, shell: 'head -c 300000 /dev/zero | tr \"\\\\0\" \"\\\"\"; head -c 100000 /dev/zero | tr \"\\\\0\" x >&2'}\n")
	rep, d := waitTask(t, s, startAsync(t, s, "big", "null"))
	checkReply(t, rep)
	if !d.Truncated || d.Status != TaskSucceeded || len(d.Stdout) == 0 || len(d.Stderr) == 0 {
		t.Fatalf("got %d bytes: truncated %v, status %s, stdout %d, stderr %d bytes", len(rep.Payload), d.Truncated, d.Status, len(d.Stdout), len(d.Stderr))
	}
}

// TestEngineCloseCancelsTasks: Close kills the running tasks (cancelled)
// and waits for them; later async calls are 503.
func TestEngineCloseCancelsTasks(t *testing.T) {
	s := mustParse(t, "version: 1\nmethods:\n  u: {async: true, run: [sleep, \"300\"], timeout: 10m}\n")
	eng := New(s)
	id := startAsync(t, eng, "u", "null")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := eng.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if d := taskDocOf(t, tcall(t, eng, "taskStatus", idPayload(id))); d.Status != TaskCancelled {
		t.Errorf("after Close: %+v", d)
	}
	if rep := tcall(t, eng, "u", "null"); rep.Status != 503 {
		t.Errorf("async call after Close: %d %s, want 503", rep.Status, rep.Payload)
	}
}

// TestTaskBuiltinsPresence: the task built-ins exist by default only with
// an async method, are listed in the catalog, and can be renamed or
// disabled (or enabled without async methods) in builtins.
func TestTaskBuiltinsPresence(t *testing.T) {
	for _, tc := range []struct {
		src  string
		want string
	}{
		{"methods:\n  a: {run: [\"true\"]}\n", "a,catalog,ping"},
		{"methods:\n  a: {async: true, run: [\"true\"]}\n", "a,catalog,ping,taskCancel,taskStatus"},
		{"builtins: {taskStatus: jobStatus, taskCancel: false}\nmethods:\n  a: {async: true, run: [\"true\"]}\n", "a,catalog,jobStatus,ping"},
		{"builtins: {taskStatus: true}\nmethods:\n  a: {run: [\"true\"]}\n", "a,catalog,ping,taskStatus"},
	} {
		s := mustParse(t, "version: 1\n"+tc.src)
		if got := strings.Join(s.Methods(), ","); got != tc.want {
			t.Errorf("%q: methods %s, want %s", tc.src, got, tc.want)
		}
		if strings.Contains(tc.want, "taskStatus") && !strings.Contains(string(tcall(t, s, "catalog", "null").Payload), `"taskStatus"`) {
			t.Errorf("%q: taskStatus not in the catalog", tc.src)
		}
	}
}
