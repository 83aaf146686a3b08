package engine

import "gopkg.in/yaml.v3"

// startTask answers an async method's call with 202 and runs its command
// as a task.
func (s *Set) startTask(m *method, r Request, raw []byte, params, env map[string]any) Reply {
	return errorReply(501, "async is not implemented yet")
}

// taskStore holds the tasks of async methods.
type taskStore struct{}

func newTaskStore() *taskStore { return &taskStore{} }

// TaskOptions is the file's `tasks:` section.
type TaskOptions struct{}

// parseTasks reads the tasks section (n nil: the defaults).
func (l *loader) parseTasks(n *yaml.Node) TaskOptions { return TaskOptions{} }
