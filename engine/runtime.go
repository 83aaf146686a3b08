package engine

// runtime is the state every Set served by one Engine shares, so that it
// survives reloads: the tasks of async methods and the request ids seen.
type runtime struct {
	tasks *taskStore
	dedup *dedup
}

func newRuntime() *runtime {
	return &runtime{tasks: newTaskStore(), dedup: newDedup()}
}

// adopt makes s use rt; it is called before s serves.
func (s *Set) adopt(rt *runtime) {
	s.rtOnce.Do(func() { s.rt = rt })
}

// runtime returns s's shared state, making a private one for a Set no
// Engine serves (methodd call, tests).
func (s *Set) runtime() *runtime {
	s.rtOnce.Do(func() { s.rt = newRuntime() })
	return s.rt
}
