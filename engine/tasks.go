package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"sync"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/methodd/methodd/internal/logkey"
)

// Task statuses, as taskStatus reports them.
const (
	TaskRunning   = "running"
	TaskSucceeded = "succeeded"
	TaskFailed    = "failed"
	TaskTimedOut  = "timedOut"
	TaskCancelled = "cancelled"
)

// Defaults of the tasks section.
const (
	DefaultTaskKeep = 24 * time.Hour // how long a finished task is kept
	DefaultTaskMax  = 100            // how many finished tasks are kept
)

// TaskOptions is the file's `tasks:` section: how long and how many
// finished tasks of async methods are kept for taskStatus. Running tasks
// are never dropped.
type TaskOptions struct {
	Keep time.Duration // default DefaultTaskKeep
	Max  int           // default DefaultTaskMax
}

// parseTasks reads the tasks section (n nil: the defaults).
func (l *loader) parseTasks(n *yaml.Node) TaskOptions {
	o := TaskOptions{Keep: DefaultTaskKeep, Max: DefaultTaskMax}
	for _, f := range l.mapping(n, "tasks", taskKeys()) {
		path := join("tasks", f.key)
		switch f.key {
		case "keep":
			if d, ok := l.duration(f.val, path); ok {
				if d <= 0 {
					l.errorf(f.val, path, "keep must be positive, got %s", d)
					continue
				}
				o.Keep = d
			}
		case "max":
			if v, ok := l.intValue(f.val, path); ok {
				if v < 1 || v > 10000 {
					l.errorf(f.val, path, "max must be 1 to 10000, got %d", v)
					continue
				}
				o.Max = v
			}
		}
	}
	return o
}

// taskIDPattern is the form of task ids: 32 lowercase hex digits.
var taskIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

// addTaskBuiltins adds taskStatus and taskCancel: by default only to a file
// with an async method; builtins.taskStatus / taskCancel (true, false or a
// name) decide otherwise.
func (l *loader) addTaskBuiltins(s *Set, b builtinNames) {
	hasAsync := false
	for _, m := range s.methods {
		hasAsync = hasAsync || m.async
	}
	idParam := &param{
		name: "taskId", typ: "string", required: true, description: "the taskId an async method answered with",
		pattern: taskIDPattern, patternSrc: taskIDPattern.String(), envName: "METHODD_PARAM_TASKID",
	}
	for _, bt := range []struct {
		key, desc string
		fn        func(*Set, map[string]any) Reply
		cancels   bool
	}{
		{"taskStatus", "Built-in: the status and output of a task of an async method", (*Set).taskStatus, false},
		{"taskCancel", "Built-in: cancel a running task of an async method (its process group is killed)", (*Set).taskCancel, true},
	} {
		name := b.names[bt.key]
		if name == "" || (!hasAsync && !b.set[bt.key]) {
			continue
		}
		if m, taken := s.methods[name]; taken {
			if b.explicit[name] {
				l.warnf(nil, join("methods", name), "method %q replaces the built-in of the same name set in builtins", m.name)
			}
			continue
		}
		s.methods[name] = &method{name: name, description: bt.desc, params: []*param{idParam},
			taskBuiltin: bt.fn, cancels: bt.cancels, concurrency: s.defaults.Concurrency}
	}
}

// taskStore holds the tasks of async methods: running ones until they end,
// finished ones within the tasks section's bounds. It is shared by every
// Set of an Engine (shared), so a reload keeps them. Safe for concurrent
// use.
type taskStore struct {
	ctx    context.Context // cancelled by close: kills every running task
	cancel context.CancelFunc
	wg     sync.WaitGroup // running tasks

	mu       sync.Mutex
	tasks    map[string]*task
	finished []*task // in the order they ended, oldest first
}

func newTaskStore() *taskStore {
	ctx, cancel := context.WithCancel(context.Background())
	return &taskStore{ctx: ctx, cancel: cancel, tasks: map[string]*task{}}
}

// task is one run of an async method's command.
type task struct {
	id     string
	method string
	cancel context.CancelFunc
	done   chan struct{} // closed when the task has ended and doc is final

	mu      sync.Mutex
	doc     taskDoc
	reply   *Reply    // the method's reply expressions over the result; nil without them
	status  int       // the taskStatus reply's status once ended: reply.status's value, else 200
	endedAt time.Time // zero while running
}

// taskDoc is what taskStatus reports.
type taskDoc struct {
	TaskID    string          `json:"taskId"`
	Method    string          `json:"method"`
	Status    string          `json:"status"`
	ExitCode  *int            `json:"exitCode"` // null while running or when it never started
	StartedAt time.Time       `json:"startedAt"`
	EndedAt   *time.Time      `json:"endedAt"`
	Stdout    string          `json:"stdout"`
	Stderr    string          `json:"stderr"`
	Truncated bool            `json:"truncated"`
	Error     string          `json:"error,omitempty"`  // why it failed to start, timed out or was cancelled
	Result    json.RawMessage `json:"result,omitempty"` // reply.payload over the result, when the method has one
}

// newTaskID returns 32 random hex digits.
func newTaskID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails (Go ≥ 1.24)
	return hex.EncodeToString(b)
}

// startTask answers an async method's call with 202 {"taskId","status":
// "running"} and runs its command as a task, under the method's timeout
// (which may exceed the 300 s call ceiling), holding the method's
// concurrency slot (release) until it ends; *release is set to nil when
// the task took it over. A command that cannot be prepared is answered
// like a synchronous call (no task).
func (s *Set) startTask(m *method, r Request, raw []byte, params, env map[string]any, release *func()) Reply {
	sp, rep, ok := s.prepare(m, r, raw, params, env)
	if !ok {
		return rep
	}
	st := s.shared().tasks
	ctx, cancel := context.WithCancel(st.ctx)
	t := &task{id: s.taskID(), method: m.name, cancel: cancel, done: make(chan struct{})}
	t.doc = taskDoc{TaskID: t.id, Method: m.name, Status: TaskRunning, StartedAt: s.now().UTC()}
	if !st.add(t) {
		cancel()
		return errorReply(503, fmt.Sprintf("method %q was not started: the daemon is stopping", m.name))
	}
	rel := *release
	*release = nil
	st.wg.Go(func() {
		res, err := s.runner.run(ctx, sp)
		cancel()
		rel() // before the end is recorded: a task seen ended holds no slot
		s.endTask(st, t, m, env, res, err)
	})
	s.log.Info("task started", logkey.Method, m.name, logkey.TaskID, t.id, logkey.RequestID, r.RequestID)
	return s.replies.valueReply(202, struct {
		TaskID string `json:"taskId"`
		Status string `json:"status"`
	}{t.id, TaskRunning}, m.name)
}

// endTask records a task's outcome: its status, exit code and output, and
// the method's reply expressions over the result.
func (s *Set) endTask(st *taskStore, t *task, m *method, env map[string]any, res procResult, startErr error) {
	now := s.now().UTC()
	d := taskDoc{ExitCode: &res.exitCode, Stdout: string(res.stdout), Stderr: string(res.stderr), Truncated: res.truncated}
	switch {
	case startErr != nil:
		d.Status, d.ExitCode, d.Error = TaskFailed, nil, fmt.Sprintf("cannot start %s: %v", m.cmd.name, startErr)
	case res.timedOut:
		d.Status, d.Error = TaskTimedOut, fmt.Sprintf("timed out after %s; its processes were killed", m.cmd.timeout)
	case res.cancelled:
		d.Status, d.Error = TaskCancelled, "cancelled; its processes were killed"
	case res.exitCode == 0:
		d.Status = TaskSucceeded
	default:
		d.Status = TaskFailed
	}
	var rep *Reply
	if startErr == nil && (m.status != nil || m.payload != nil) {
		if env == nil {
			env = map[string]any{}
		}
		env[envExitCode] = res.exitCode
		env[envStdout] = string(res.stdout)
		env[envStderr] = string(res.stderr)
		env[envDurationMs] = int(res.duration.Milliseconds())
		env[envTruncated] = res.truncated
		status := 200
		if res.exitCode != 0 || res.timedOut || res.cancelled {
			status = 500
		}
		r := s.exprReply(m, env, status, commandPayload(&res))
		owned := Reply{Status: r.Status, Payload: append([]byte(nil), r.Payload...)}
		r.Release()
		rep = &owned
	}
	t.mu.Lock()
	t.doc.Status, t.doc.ExitCode, t.doc.Error = d.Status, d.ExitCode, d.Error
	t.doc.Stdout, t.doc.Stderr, t.doc.Truncated = d.Stdout, d.Stderr, d.Truncated
	t.doc.EndedAt, t.endedAt, t.reply = &now, now, rep
	t.status = 200
	if rep != nil && m.status != nil {
		t.status = rep.Status
	}
	if rep != nil {
		t.doc.Result = rep.Payload
	}
	t.mu.Unlock()
	st.finish(t, s.tasks, now) // before done: whoever waited sees it among the finished
	close(t.done)
	s.log.Info("task ended", logkey.Method, m.name, logkey.TaskID, t.id, logkey.Status, d.Status,
		logkey.ExitCode, res.exitCode, logkey.DurationMs, res.duration.Milliseconds())
}

// add registers a running task; false once the store is closed.
func (st *taskStore) add(t *task) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.ctx.Err() != nil {
		return false
	}
	st.tasks[t.id] = t
	return true
}

// finish moves t to the finished tasks and drops the ones past o's bounds.
func (st *taskStore) finish(t *task, o TaskOptions, now time.Time) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.finished = append(st.finished, t)
	st.pruneLocked(o, now)
}

// pruneLocked drops finished tasks older than o.Keep and, beyond o.Max,
// the oldest. st.mu is held.
func (st *taskStore) pruneLocked(o TaskOptions, now time.Time) {
	drop := 0
	for drop < len(st.finished) {
		t := st.finished[drop]
		if len(st.finished)-drop <= o.Max && now.Sub(t.endedAt) < o.Keep {
			break
		}
		delete(st.tasks, t.id)
		drop++
	}
	st.finished = st.finished[drop:]
}

// running is the number of tasks not yet ended: the tasks held, less the
// finished ones.
func (st *taskStore) running() int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return len(st.tasks) - len(st.finished)
}

// get returns the task id, after dropping finished tasks past o's bounds.
func (st *taskStore) get(id string, o TaskOptions, now time.Time) *task {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.pruneLocked(o, now)
	return st.tasks[id]
}

// close cancels every running task (their process groups are killed as
// at a timeout) and waits for them to end, at most until ctx is done.
func (st *taskStore) close(ctx context.Context) error {
	st.mu.Lock()
	st.cancel()
	st.mu.Unlock()
	done := make(chan struct{})
	go func() { st.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// lookup finds the task of a taskStatus or taskCancel call: its reply is
// 404 for an unknown id.
func (s *Set) lookup(params map[string]any) (*task, Reply, bool) {
	id, _ := params["taskId"].(string)
	t := s.shared().tasks.get(id, s.tasks, s.now())
	if t == nil {
		return nil, bodyReply(404, errorBody{Error: fmt.Sprintf("no task %s: it never existed, ended more than %s ago or among the oldest beyond the last %d, "+
			"or started before the daemon's last restart", id, s.tasks.Keep, s.tasks.Max), Param: "taskId"}), false
	}
	return t, Reply{}, true
}

// taskStatus is the built-in reporting a task: 200 with its document. For
// a finished task, reply.payload's value is the document's result and
// reply.status's value (when the method has one) the reply's status.
func (s *Set) taskStatus(params map[string]any) Reply {
	t, rep, ok := s.lookup(params)
	if !ok {
		return rep
	}
	return t.statusReply(s)
}

// statusReply renders t's document, its output cut to fit a reply.
func (t *task) statusReply(s *Set) Reply {
	t.mu.Lock()
	d := t.doc
	status := 200
	if t.status != 0 {
		status = t.status
	}
	t.mu.Unlock()
	b, err := fitTaskDoc(d)
	if err != nil {
		return errorReply(500, "taskStatus: "+err.Error())
	}
	return Reply{Status: status, Payload: b}
}

// fitTaskDoc encodes d, cutting stdout and stderr (and, when that is not
// enough, dropping a large result) so that it fits a reply; truncated is
// set when anything was cut.
func fitTaskDoc(d taskDoc) ([]byte, error) {
	b, err := marshal(d)
	if err != nil || len(b) <= MaxReplyBytes {
		return b, err
	}
	stdout, stderr := []byte(d.Stdout), []byte(d.Stderr)
	d.Truncated, d.Stdout, d.Stderr = true, "", ""
	empty, err := marshal(d)
	if err != nil {
		return nil, err
	}
	if len(empty) > MaxReplyBytes/2 {
		d.Result = nil // keep the output rather than a huge result
		if empty, err = marshal(d); err != nil {
			return nil, err
		}
	}
	for budget := MaxReplyBytes - len(empty) - 64; budget > 0; budget /= 2 {
		out, errOut, _ := fitPair(stdout, stderr, budget)
		d.Stdout, d.Stderr = string(out), string(errOut)
		if b, err = marshal(d); err != nil || len(b) <= MaxReplyBytes {
			return b, err
		}
	}
	d.Stdout, d.Stderr = "", ""
	return marshal(d)
}

// taskCancel is the built-in that cancels a running task: its process
// group gets SIGTERM, then SIGKILL after the grace, as at a timeout. It
// answers 200 with the task's final document once it has ended, 409 when
// it had already ended.
func (s *Set) taskCancel(params map[string]any) Reply {
	t, rep, ok := s.lookup(params)
	if !ok {
		return rep
	}
	select {
	case <-t.done:
		t.mu.Lock()
		st := t.doc.Status
		t.mu.Unlock()
		return errorReply(409, fmt.Sprintf("task %s has already ended (%s)", t.id, st))
	default:
	}
	t.cancel()
	<-t.done // the runner kills the group: SIGKILL after the grace
	return t.statusReply(s)
}

// WaitTask waits until task id (a taskId an async call of s answered
// with) has ended, or ctx is done, and returns its taskStatus reply then;
// ok is false for an id s's tasks do not hold. methodd call uses it to run
// an async method to its end.
func (s *Set) WaitTask(ctx context.Context, id string) (rep Reply, ok bool) {
	t := s.shared().tasks.get(id, s.tasks, s.now())
	if t == nil {
		return Reply{}, false
	}
	select {
	case <-t.done:
	case <-ctx.Done():
	}
	return t.statusReply(s), true
}
