package engine

import (
	"sync/atomic"
	"time"

	"github.com/expr-lang/expr"
	"gopkg.in/yaml.v3"
)

// method is one compiled method of a Set.
type method struct {
	name        string
	description string
	params      []*param
	when        *program
	cmd         *command // nil for expression-only methods
	status      *program // reply.status, nil = default
	payload     *program // reply.payload, nil = default
	concurrency int
	limiter     atomic.Pointer[limiter]
	builtin     func(s *Set) Reply // ping and catalog
	// taskBuiltin, when set, is a built-in that works on the tasks of
	// async methods (taskStatus, taskCancel); it gets the bound params.
	taskBuiltin func(s *Set, params map[string]any) Reply
	cancels     bool  // taskCancel: a built-in with an effect (see sideEffects)
	async       bool  // answer 202 at once; the command runs as a task (tasks.go)
	detach      bool  // answer first, then start the command on its own (detach.go)
	needs       needs // what the call must put in the environment
}

// sideEffects reports whether a call of name can change anything outside
// the daemon: a method with a command (run or shell, async or detach
// included) or taskCancel. Only those calls are remembered for duplicate
// request ids (dedup): any other method computes its reply from the request
// alone, so answering a duplicate again is harmless, and remembering it
// would keep its reply in memory for the whole window for nothing.
func (s *Set) sideEffects(name string) bool {
	m := s.methods[name]
	return m != nil && (m.cmd != nil || m.cancels)
}

// command is a compiled run or shell.
type command struct {
	shell   bool
	name    string      // run[0] as written, or /bin/sh
	path    string      // resolved program; "" = look up at call time
	args    []*template // run[1:]; nil for shell
	script  string      // shell text, never interpolated
	env     []envVar
	timeout time.Duration
	runAs   *runAs  // run_as: the user and group to run as; nil = the daemon's (runas.go)
	limits  *limits // limits: rlimits of the command; nil = none (limits.go)
}

// envVar is one entry of a method's env: section.
type envVar struct {
	name string
	val  *template
}

// methodCtx is what every method of a file shares while it is compiled.
type methodCtx struct {
	fns        []expr.Option
	defaults   Defaults
	dir        string // config directory: relative program paths, working directory
	searchPath string // PATH used to resolve run[0]
}

// parseMethod compiles one entry of `methods:`; nil when it has errors.
func (l *loader) parseMethod(f field, mc *methodCtx) *method {
	path := join("methods", f.key)
	before := l.errCount()
	if err := checkMethodName(f.key); err != nil {
		l.errorf(f.keyNode, path, "%v", err)
	}
	m := &method{name: f.key, concurrency: mc.defaults.Concurrency}
	if f.val.Kind != yaml.MappingNode {
		l.errorf(f.val, path, "must be a mapping with a reply or a command (run or shell), got %s", kindName(f.val))
		return nil
	}
	by := map[string]field{}
	for _, mf := range l.mapping(f.val, path, methodKeys()) {
		by[mf.key] = mf
	}
	if d, ok := by["description"]; ok {
		m.description, _ = l.scalar(d.val, join(path, "description"))
	}
	if p, ok := by["params"]; ok {
		m.params = l.parseParams(p.val, join(path, "params"))
	}
	if c, ok := by["concurrency"]; ok {
		if n, ok := l.concurrency(c.val, join(path, "concurrency")); ok {
			m.concurrency = n
		}
	}
	pre := envTypes(m.params, false)
	if w, ok := by["when"]; ok {
		if src, ok := l.scalar(w.val, join(path, "when")); ok {
			m.when = l.compileExpr(w.val, join(path, "when"), src, 0, pre, mc.fns, yieldBool)
		}
	}
	m.cmd = l.parseCommand(by, path, pre, mc)
	l.parseActions(m, by, path)
	l.parseReply(m, by, path, mc, f.keyNode)
	if l.errCount() > before {
		return nil
	}
	m.computeNeeds()
	return m
}

func (l *loader) errCount() int {
	n := 0
	for _, d := range l.diags {
		if d.Severity != SeverityWarning {
			n++
		}
	}
	return n
}

// parseReply compiles reply.status and reply.payload, and checks that the
// method does something.
func (l *loader) parseReply(m *method, by map[string]field, path string, mc *methodCtx, at *yaml.Node) {
	r, hasReply := by["reply"]
	if !hasReply {
		if _, run := by["run"]; !run {
			if _, sh := by["shell"]; !sh {
				l.errorf(at, path, "a method needs a reply or a command (run or shell)")
			}
		}
		return
	}
	env := envTypes(m.params, m.cmd != nil)
	fields := l.mapping(r.val, join(path, "reply"), replyKeys())
	if len(fields) == 0 && m.cmd == nil && r.val.Kind != yaml.SequenceNode {
		l.errorf(r.val, join(path, "reply"), "an empty reply needs a command (run or shell); set reply.payload or reply.status")
	}
	for _, f := range fields {
		p := join(path, "reply", f.key)
		src, ok := l.scalar(f.val, p)
		if !ok {
			continue
		}
		if f.key == "status" {
			m.status = l.compileExpr(f.val, p, src, 0, env, mc.fns, yieldInt)
		} else {
			m.payload = l.compileExpr(f.val, p, src, 0, env, mc.fns, yieldAny)
		}
	}
}

// computeNeeds collects what the call environment must hold.
func (m *method) computeNeeds() {
	for _, p := range []*program{m.when, m.status, m.payload} {
		if p != nil {
			m.needs |= p.needs
		}
	}
	if m.cmd != nil {
		for _, t := range m.cmd.args {
			m.needs |= t.needs
		}
		for _, e := range m.cmd.env {
			m.needs |= e.val.needs
		}
	}
}

// paramNames lists the declared parameter names.
func (m *method) paramNames() []string {
	out := make([]string, len(m.params))
	for i, p := range m.params {
		out[i] = p.name
	}
	return out
}
