package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/bits"
	"strings"
	"time"

	"github.com/methodd/methodd/internal/logkey"
)

// noExit marks a call that ran no command, for the log line.
const noExit = math.MinInt

// nullJSON is the payload of a request that carries none.
var nullJSON = []byte("null")

// Call executes one method call and returns its reply. It never panics (a
// panic becomes a 500 reply) and always returns exactly one reply whose
// payload is valid JSON of at most MaxReplyBytes bytes. ctx ending kills a
// running command (reply 503).
func (s *Set) Call(ctx context.Context, r Request) (rep Reply) {
	start := time.Now()
	exit := noExit
	defer func() {
		if p := recover(); p != nil {
			rep = errorReply(500, fmt.Sprintf("internal error in method %q: %v", r.Method, p))
		}
		s.logCall(ctx, r, rep, start, exit)
	}()
	m := s.methods[r.Method]
	if m == nil {
		return unknownMethodReply(r.Method, s.names)
	}
	lim := m.limiter.Load()
	if !lim.acquire() {
		return errorReply(429, fmt.Sprintf("method %q is busy: its concurrency limit (%d) is reached; retry later", m.name, lim.max))
	}
	release := lim.release // an async method's task takes it over
	defer func() {
		if release != nil {
			release()
		}
	}()
	return s.handle(ctx, m, r, &exit, &release)
}

// handle runs a method once its concurrency slot is held.
func (s *Set) handle(ctx context.Context, m *method, r Request, exit *int, release *func()) Reply {
	// Text that would be altered (invalid UTF-8, a lone surrogate) is
	// refused for every method, at its offset in the payload as received.
	if err := checkPayloadText(r.Payload); err != nil {
		return errorReply(400, err.Error())
	}
	raw := bytes.TrimSpace(r.Payload)
	if len(raw) == 0 {
		raw = nullJSON
	}
	var payload any
	if m.needs&needPayload != 0 || len(m.params) > 0 {
		var err error
		if payload, err = decodeJSON(raw); err != nil {
			if pe, ok := errors.AsType[*payloadError](err); ok {
				pe.Offset += bytes.Index(r.Payload, raw[:1]) // offsets count from the payload as received
				return errorReply(400, pe.Error())
			}
			// The same inputs fail there; it names the reason and position.
			if uerr := json.Unmarshal(raw, new(any)); uerr != nil {
				err = uerr
			}
			return errorReply(400, "payload is not valid JSON: "+err.Error())
		}
	} else if !json.Valid(raw) {
		return errorReply(400, "payload is not valid JSON")
	}
	params, perr := m.bindParams(payload)
	if perr != nil {
		return bodyReply(400, errorBody{Error: perr.msg, Param: perr.param})
	}
	if m.builtin != nil {
		return m.builtin(s)
	}
	if m.taskBuiltin != nil {
		return m.taskBuiltin(s, params)
	}
	env := s.callEnv(m, r, payload, params)
	if m.when != nil {
		ok, err := s.eval.run(m.when, env)
		if err != nil {
			return errorReply(500, err.Error())
		}
		if ok != true {
			return errorReply(400, fmt.Sprintf("method %q refused the call: its when condition is false", m.name))
		}
	}
	if m.cmd == nil {
		return s.exprReply(m, env, 200, nil)
	}
	switch {
	case m.detach:
		return s.detach(m, r, raw, params, env)
	case m.async:
		return s.startTask(m, r, raw, params, env, release)
	}
	res, rep, ok := s.runCommand(ctx, m, r, raw, params, env)
	if !ok {
		return rep
	}
	*exit = res.exitCode
	status := 200
	if res.exitCode != 0 {
		status = 500
	}
	def := commandPayload(&res)
	if res.limit != nil { // a non-zero exit under limits.memory (limits.go)
		def = limitPayload(m.name, &res)
	}
	if m.status == nil && m.payload == nil {
		return Reply{Status: status, Payload: def}
	}
	if m.needs&needResult != 0 {
		env[envExitCode] = res.exitCode
		env[envStdout] = string(res.stdout)
		env[envStderr] = string(res.stderr)
		env[envDurationMs] = int(res.duration.Milliseconds())
		env[envTruncated] = res.truncated
	}
	return s.exprReply(m, env, status, def)
}

// callEnv builds the expression environment, holding only the names the
// method's expressions read.
func (s *Set) callEnv(m *method, r Request, payload any, params map[string]any) map[string]any {
	if m.needs == 0 {
		return nil
	}
	size := bits.OnesCount16(uint16(m.needs))
	if m.needs&needResult != 0 {
		size += 4
	}
	env := make(map[string]any, size)
	if m.needs&needPayload != 0 {
		env[envPayload] = payload
	}
	if m.needs&needParams != 0 {
		env[envParams] = params
	}
	if m.needs&needMethod != 0 {
		env[envMethod] = r.Method
	}
	if m.needs&needDeviceID != 0 {
		env[envDeviceID] = r.DeviceID
	}
	if m.needs&needModuleID != 0 {
		env[envModuleID] = r.ModuleID
	}
	if m.needs&needRequestID != 0 {
		env[envRequestID] = r.RequestID
	}
	return env
}

// exprReply evaluates reply.payload and reply.status (when set) over the
// defaults and encodes the reply.
func (s *Set) exprReply(m *method, env map[string]any, status int, def json.RawMessage) Reply {
	var v any
	if def != nil {
		v = def
	}
	if m.payload != nil {
		out, err := s.eval.run(m.payload, env)
		if err != nil {
			return errorReply(500, err.Error())
		}
		v = out
	}
	if m.status != nil {
		out, err := s.eval.run(m.status, env)
		if err != nil {
			return errorReply(500, err.Error())
		}
		if status, err = toStatus(out); err != nil {
			return errorReply(500, m.status.path+": "+err.Error())
		}
	}
	return s.replies.valueReply(status, v, m.name)
}

// toStatus converts the value of reply.status to a status code (100..599).
func toStatus(v any) (int, error) {
	var n int
	switch x := v.(type) {
	case int:
		n = x
	case int64:
		n = int(x)
	case float64:
		if x != math.Trunc(x) || x < 0 || x > 1000 {
			return 0, fmt.Errorf("status must be an integer, got %v", x)
		}
		n = int(x)
	default:
		return 0, fmt.Errorf("status must be an integer, got %T", v)
	}
	if n < 100 || n > 599 {
		return 0, fmt.Errorf("status %d is outside 100..599", n)
	}
	return n, nil
}

// bindParams validates payload against the method's params and returns the
// params map (defaults applied). Without params any payload is accepted.
// Payload keys that are not declared parameters are allowed and ignored.
func (m *method) bindParams(payload any) (map[string]any, *paramError) {
	if len(m.params) == 0 {
		return nil, nil
	}
	obj, ok := payload.(map[string]any)
	if !ok && payload != nil {
		return nil, &paramError{msg: fmt.Sprintf("payload must be a JSON object with the parameters %s, got %s", strings.Join(m.paramNames(), ", "), jsonTypeName(payload))}
	}
	params := make(map[string]any, len(m.params))
	for _, p := range m.params {
		v, present := obj[p.name]
		if !present || v == nil {
			switch {
			case p.hasDef:
				params[p.name] = p.def
			case p.required:
				return nil, &paramError{param: p.name, msg: fmt.Sprintf("missing required parameter %q", p.name)}
			}
			continue
		}
		cv, err := p.check(v)
		if err != nil {
			return nil, &paramError{param: p.name, msg: err.Error()}
		}
		params[p.name] = cv
	}
	return params, nil
}

// logCall writes the one Info line per call, and the payloads at Debug.
func (s *Set) logCall(ctx context.Context, r Request, rep Reply, start time.Time, exit int) {
	if !s.log.Enabled(ctx, slog.LevelInfo) {
		return
	}
	attrs := []slog.Attr{
		slog.String(logkey.Method, r.Method), slog.String(logkey.RequestID, r.RequestID),
		slog.String(logkey.DeviceID, r.DeviceID), slog.Int(logkey.Status, rep.Status),
		slog.Int64(logkey.DurationMs, time.Since(start).Milliseconds()),
	}
	if r.ModuleID != "" {
		attrs = append(attrs, slog.String(logkey.ModuleID, r.ModuleID))
	}
	if exit != noExit {
		attrs = append(attrs, slog.Int(logkey.ExitCode, exit))
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "call", attrs...)
	if s.log.Enabled(ctx, slog.LevelDebug) {
		s.log.LogAttrs(ctx, slog.LevelDebug, "call payloads", slog.String(logkey.Method, r.Method),
			slog.String(logkey.RequestID, r.RequestID), slog.String(logkey.Payload, string(r.Payload)), slog.String(logkey.Reply, string(rep.Payload)))
	}
}
