package engine

// shared is the state every Set served by one Engine shares, so that it
// survives reloads: the tasks of async methods and the request ids seen.
type shared struct {
	tasks *taskStore
	dedup *dedup
}

func newShared() *shared {
	return &shared{tasks: newTaskStore(), dedup: newDedup()}
}

// adopt makes s use rt; it is called before s serves.
func (s *Set) adopt(rt *shared) {
	s.rtOnce.Do(func() { s.rt = rt })
}

// shared returns s's shared state, making a private one for a Set no
// Engine serves (methodd call, tests).
func (s *Set) shared() *shared {
	s.rtOnce.Do(func() { s.rt = newShared() })
	return s.rt
}
