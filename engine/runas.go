package engine

import "gopkg.in/yaml.v3"

// runAs is a method's run_as: the credentials its command runs with.
type runAs struct{}

// parseRunAs reads run_as: {user, group}.
func (l *loader) parseRunAs(n *yaml.Node, path string) *runAs { return nil }
