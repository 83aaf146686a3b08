package engine

import (
	"context"
	"fmt"
	"strings"
)

// maxEnvValue bounds one METHODD_PAYLOAD / METHODD_PARAM_* value: Linux
// refuses a single environment string over 128 KiB, so larger values are
// left out (the payload is always on stdin).
const maxEnvValue = 96 << 10

// runCommand builds argv and the environment, runs the command and maps a
// failure to start, a timeout or a cancellation to its reply (ok false).
func (s *Set) runCommand(ctx context.Context, m *method, r Request, raw []byte, params, env map[string]any) (procResult, Reply, bool) {
	sp, rep, ok := s.prepare(m, r, raw, params, env)
	if !ok {
		return procResult{}, rep, false
	}
	res, err := s.runner.run(ctx, sp)
	return commandOutcome(m, res, err)
}

// prepare renders the command of m for one call: argv, the environment,
// the program's path and the method's run_as and limits. A failure is
// the reply to send instead (ok false); off Linux every command fails
// here, as one that cannot start (ErrCommandsLinuxOnly).
func (s *Set) prepare(m *method, r Request, raw []byte, params, env map[string]any) (procSpec, Reply, bool) {
	if err := commandsSupported(); err != nil {
		_, rep, _ := commandOutcome(m, procResult{}, err)
		return procSpec{}, rep, false
	}
	c := m.cmd
	argv, err := c.argv(&s.eval, env)
	if err != nil {
		return procSpec{}, errorReply(err.status, err.msg), false
	}
	cmdEnv, err := s.commandEnv(m, r, raw, params, env)
	if err != nil {
		return procSpec{}, errorReply(err.status, err.msg), false
	}
	path := c.path
	if path == "" {
		if path = lookPath(c.name, s.searchPath); path == "" {
			return procSpec{}, errorReply(500, fmt.Sprintf("method %q: command %q not found in PATH (%s)", m.name, c.name, s.searchPath)), false
		}
	}
	return procSpec{path: path, args: argv, env: cmdEnv, dir: s.dir, stdin: raw, timeout: c.timeout, runAs: c.runAs, limits: c.limits}, Reply{}, true
}

// commandOutcome maps the outcome of a command run to its reply when it
// did not run to its end (ok false): it could not start, timed out, was
// cancelled or was killed by a signal its limits explain (500 with
// limitPayload; the method's reply expressions are not evaluated, as for a
// timeout).
func commandOutcome(m *method, res procResult, startErr error) (procResult, Reply, bool) {
	c := m.cmd
	switch {
	case startErr != nil:
		return res, errorReply(500, fmt.Sprintf("method %q: cannot start %s: %v", m.name, c.name, startErr)), false
	case res.timedOut:
		return res, errorReply(504, fmt.Sprintf("method %q timed out after %s; its processes were killed%s", m.name, c.timeout, escapeNote(res.escaped))), false
	case res.cancelled:
		return res, errorReply(503, fmt.Sprintf("method %q was cancelled (the daemon is stopping); its processes were killed%s", m.name, escapeNote(res.escaped))), false
	case res.limit != nil && res.limit.signaled:
		return res, Reply{Status: 500, Payload: limitPayload(m.name, &res)}, false
	}
	return res, Reply{}, true
}

// escapeNote is the reply's account of processes that had left the
// command's process group: "" when there were none.
func escapeNote(e escapeReport) string {
	if s := e.String(); s != "" {
		return " (" + s + ")"
	}
	return ""
}

// callError is a failure before a command starts, with its status.
type callError struct {
	status int
	msg    string
}

// argv renders the argument vector: the program, then each run element
// rendered to exactly one argument (or -c SCRIPT for shell).
func (c *command) argv(ev *evaluator, env map[string]any) ([]string, *callError) {
	if c.shell {
		return []string{c.name, "-c", c.script}, nil
	}
	argv := make([]string, 1, len(c.args)+1)
	argv[0] = c.name
	for i, t := range c.args {
		a, err := t.eval(ev, env)
		if err != nil {
			return nil, &callError{500, err.Error()}
		}
		if strings.IndexByte(a, 0) >= 0 {
			return nil, &callError{400, fmt.Sprintf("argument %d would contain a NUL byte, which cannot be passed to a command", i+1)}
		}
		argv = append(argv, a)
	}
	return argv, nil
}

// commandEnv is the whole environment of a command: PATH/LANG/HOME (with
// run_as, HOME is that user's home), the METHODD_* variables, then the
// method's env entries (which may override PATH, LANG and HOME).
func (s *Set) commandEnv(m *method, r Request, raw []byte, params, env map[string]any) ([]string, *callError) {
	out := make([]string, 0, len(s.baseEnv)+6+len(m.params)+len(m.cmd.env))
	for _, kv := range s.baseEnv {
		if ra := m.cmd.runAs; ra != nil && strings.HasPrefix(kv, "HOME=") {
			continue // the user's own, below
		}
		out = append(out, kv)
	}
	if ra := m.cmd.runAs; ra != nil && ra.home != "" {
		out = append(out, "HOME="+ra.home)
	}
	out = append(out,
		"METHODD_METHOD="+r.Method, "METHODD_REQUEST_ID="+r.RequestID,
		"METHODD_DEVICE_ID="+r.DeviceID, "METHODD_MODULE_ID="+r.ModuleID)
	if len(raw) <= maxEnvValue {
		out = append(out, "METHODD_PAYLOAD="+string(raw))
	}
	for _, p := range m.params {
		v, ok := params[p.name]
		if !ok || v == nil {
			continue
		}
		sv, err := stringify(v)
		if err != nil {
			return nil, &callError{500, err.Error()}
		}
		if len(sv) <= maxEnvValue {
			out = append(out, p.envName+"="+sv)
		}
	}
	for _, e := range m.cmd.env {
		v, err := e.val.eval(&s.eval, env)
		if err != nil {
			return nil, &callError{500, err.Error()}
		}
		out = append(out, e.name+"="+v)
	}
	for _, kv := range out {
		if strings.IndexByte(kv, 0) >= 0 {
			name, _, _ := strings.Cut(kv, "=")
			return nil, &callError{400, fmt.Sprintf("environment variable %s would contain a NUL byte, which cannot be passed to a command", name)}
		}
	}
	return out, nil
}
