package engine

import "gopkg.in/yaml.v3"

// runAs is a method's run_as, resolved when the file loads: the
// credentials its command runs with.
type runAs struct {
	name     string   // the user as written, for messages
	home     string   // the user's home directory: the command's HOME
	uid, gid uint32   // the user, and run_as.group or the user's primary group
	groups   []uint32 // the user's supplementary groups (user.GroupIds)
	// keepGroups is set when the daemon cannot set groups (no CAP_SETGID)
	// and runs as uid and gid already: the command keeps the daemon's
	// supplementary groups.
	keepGroups bool
}

// runAsNodes checks the syntax of run_as: a mapping of user (required) and
// group, each a non-empty name or id. It returns their nodes; a nil user
// when there is an error (reported at its node).
func (l *loader) runAsNodes(n *yaml.Node, path string) (userNode, groupNode *yaml.Node) {
	if n.Kind == yaml.ScalarNode && n.Tag != "!!null" {
		l.errorf(n, path, "must be a mapping such as {user: nobody, group: nogroup}, got %s", describe(n))
		return nil, nil
	}
	before := l.errCount()
	for _, f := range l.mapping(n, path, runAsKeys()) {
		if s, ok := l.scalar(f.val, join(path, f.key)); ok && s == "" {
			l.errorf(f.val, join(path, f.key), "must be a name or a numeric id, got %s", describe(f.val))
		}
		if f.key == "user" {
			userNode = f.val
		} else {
			groupNode = f.val
		}
	}
	if userNode == nil && l.errCount() == before {
		l.errorf(n, path, "needs user: the name or uid to run the command as, such as {user: nobody}")
	}
	if l.errCount() > before {
		return nil, nil
	}
	return userNode, groupNode
}
