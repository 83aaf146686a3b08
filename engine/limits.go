package engine

import "gopkg.in/yaml.v3"

// limits is a method's limits: the rlimits of its command.
type limits struct{}

// parseLimits reads limits: {memory, cpu, open_files, processes, output}.
func (l *loader) parseLimits(n *yaml.Node, path string) *limits { return nil }
