//go:build !linux

package engine

import "gopkg.in/yaml.v3"

// parseRunAs reads run_as off Linux: its syntax only. The user and group
// name the Linux device's accounts, not this machine's (Windows has no
// uids at all), and whether the daemon may switch to them depends on its
// Linux capabilities; neither can be told here, where commands do not run.
func (l *loader) parseRunAs(n *yaml.Node, path string) *runAs {
	userNode, _ := l.runAsNodes(n, path)
	if userNode == nil {
		return nil
	}
	return &runAs{name: userNode.Value}
}

// canLimitHere is "": whether the daemon may limit another user's commands
// depends on its Linux capabilities (CAP_SYS_RESOURCE), which cannot be
// told off Linux.
func canLimitHere(*runAs) string { return "" }
