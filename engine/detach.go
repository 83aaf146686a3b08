package engine

// detach answers a detach method's call: the reply says the command is
// scheduled, and its After starts the command on its own once the reply
// has been delivered.
func (s *Set) detach(m *method, r Request, raw []byte, params, env map[string]any) Reply {
	return errorReply(501, "detach is not implemented yet")
}
