package engine

// parseActions reads the keys that change how a command method's command
// runs: async and detach (how it is answered), run_as and limits (what it
// may do). Each needs a command.
func (l *loader) parseActions(m *method, by map[string]field, path string) {
	for _, k := range []string{"async", "detach"} {
		f, ok := by[k]
		if !ok {
			continue
		}
		b, ok := l.boolValue(f.val, join(path, k))
		if !ok {
			continue
		}
		if b && m.cmd == nil {
			l.errorf(f.keyNode, join(path, k), "%s needs a command (run or shell)", k)
			continue
		}
		if k == "async" {
			m.async = b
		} else {
			m.detach = b
		}
	}
	if m.async && m.detach {
		l.errorf(by["detach"].keyNode, join(path, "detach"), "async and detach exclude each other: async keeps the command and reports it through taskStatus, detach lets it go")
	}
	if r, ok := by["reply"]; ok && m.detach {
		l.warnf(r.keyNode, join(path, "reply"), "reply has no effect on a detached method: the call is answered 202 scheduled before the command starts")
	}
	if t, ok := by["timeout"]; ok && m.cmd != nil {
		switch {
		case m.detach:
			l.warnf(t.keyNode, join(path, "timeout"), "timeout has no effect on a detached command: it outlives the call and is never killed")
		case !m.async && m.cmd.timeout > maxUsefulTimeout:
			l.warnf(t.val, join(path, "timeout"), "timeout %s is longer than IoT Hub waits for a reply (at most %s); make the method async to run longer", m.cmd.timeout, maxUsefulTimeout)
		}
	}
	if m.cmd == nil {
		for _, k := range []string{"run_as", "limits"} {
			if f, ok := by[k]; ok {
				l.errorf(f.keyNode, join(path, k), "%s needs a command (run or shell)", k)
			}
		}
		return
	}
	if f, ok := by["run_as"]; ok {
		m.cmd.runAs = l.parseRunAs(f.val, join(path, "run_as"))
	}
	if f, ok := by["limits"]; ok {
		m.cmd.limits = l.parseLimits(f.val, join(path, "limits"))
		if m.cmd.runAs != nil && m.cmd.limits != nil {
			if msg := canLimitHere(m.cmd.runAs); msg != "" {
				l.errorf(f.keyNode, join(path, "limits"), "%s", msg)
			}
		}
	}
}
