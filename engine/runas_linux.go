package engine

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"
	"syscall"

	"gopkg.in/yaml.v3"
)

// credential is the SysProcAttr credential of a command run as r.
func (r *runAs) credential() *syscall.Credential {
	return &syscall.Credential{Uid: r.uid, Gid: r.gid, Groups: r.groups, NoSetGroups: r.keepGroups}
}

// Capability bits of /proc/self/status CapEff (linux/capability.h).
const (
	capSetGID      = 6
	capSetUID      = 7
	capSysResource = 24
)

// canLimit says why the daemon cannot apply limits to a command run as r;
// "" when it can. Limits are set on the started command (prlimit), which
// for a process of another user needs CAP_SYS_RESOURCE (a default Docker
// root, or a unit whose CapabilityBoundingSet drops it, lacks it).
func canLimit(r *runAs, acc accounts) string {
	uid, _, caps, err := acc.self()
	if err != nil {
		return fmt.Sprintf("cannot tell whether the daemon may limit commands of other users: %v", err)
	}
	if r.uid == uint32(uid) || caps&(1<<capSysResource) != 0 {
		return ""
	}
	return fmt.Sprintf("limits on a command run as %s (uid %d) need CAP_SYS_RESOURCE, which the daemon (uid %d) lacks; grant it (see run_as in docs/handlers.md) or drop run_as or limits",
		r.name, r.uid, uid)
}

// accounts is what run_as needs from the system. systemAccounts is the
// real one; tests build their own to check refusals without changing
// users or privileges.
type accounts struct {
	lookupUser  func(nameOrID string) (*user.User, error)
	lookupGroup func(nameOrID string) (*user.Group, error)
	groupIDs    func(*user.User) ([]string, error)
	// self returns the daemon's effective uid and gid and its effective
	// capability set (bit N = capability N).
	self func() (uid, gid int, capEff uint64, err error)
}

// systemAccounts looks users and groups up with os/user (without cgo:
// /etc/passwd and /etc/group) and reads the daemon's capabilities from
// /proc/self/status.
func systemAccounts() accounts {
	return accounts{
		lookupUser: func(s string) (*user.User, error) {
			if isNumericID(s) {
				return user.LookupId(s)
			}
			return user.Lookup(s)
		},
		lookupGroup: func(s string) (*user.Group, error) {
			if isNumericID(s) {
				return user.LookupGroupId(s)
			}
			return user.LookupGroup(s)
		},
		groupIDs: (*user.User).GroupIds,
		self: func() (int, int, uint64, error) {
			caps, err := effectiveCaps("/proc/self/status")
			return os.Geteuid(), os.Getegid(), caps, err
		},
	}
}

// effectiveCaps reads the CapEff line of a /proc/PID/status file.
func effectiveCaps(file string) (uint64, error) {
	f, err := os.Open(file)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapEff:"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("%s has no CapEff line", file)
}

func isNumericID(s string) bool {
	_, err := strconv.ParseUint(s, 10, 32)
	return err == nil
}

// canLimitHere is canLimit against the system's accounts.
func canLimitHere(r *runAs) string { return canLimit(r, systemAccounts()) }

// parseRunAs reads run_as: {user, group} against the system's accounts.
func (l *loader) parseRunAs(n *yaml.Node, path string) *runAs {
	return l.runAsWith(n, path, systemAccounts())
}

// runAsWith reads run_as with acc: the user must exist, the group (default
// the user's primary group) must exist, and the daemon must be able to
// switch to them. nil when there is an error (reported at its node).
func (l *loader) runAsWith(n *yaml.Node, path string, acc accounts) *runAs {
	userNode, groupNode := l.runAsNodes(n, path)
	if userNode == nil {
		return nil
	}
	u, err := acc.lookupUser(userNode.Value)
	if err != nil {
		l.errorf(userNode, join(path, "user"), "%s", lookupMessage("user", userNode.Value, err))
		return nil
	}
	r := &runAs{name: u.Username, home: u.HomeDir}
	r.uid, _ = parseID(u.Uid)
	r.gid, _ = parseID(u.Gid)
	if groupNode != nil {
		g, err := acc.lookupGroup(groupNode.Value)
		if err != nil {
			l.errorf(groupNode, join(path, "group"), "%s", lookupMessage("group", groupNode.Value, err))
			return nil
		}
		r.gid, _ = parseID(g.Gid)
	}
	if !l.supplementaryGroups(r, u, acc, userNode, path) {
		return nil
	}
	if msg := canSwitch(r, acc); msg != "" {
		l.errorf(userNode, join(path, "user"), "%s", msg)
		return nil
	}
	return r
}

// supplementaryGroups fills r.groups from the user's group list.
func (l *loader) supplementaryGroups(r *runAs, u *user.User, acc accounts, at *yaml.Node, path string) bool {
	ids, err := acc.groupIDs(u)
	if err != nil {
		l.errorf(at, join(path, "user"), "cannot list the groups of user %q: %v", u.Username, err)
		return false
	}
	for _, s := range ids {
		if id, err := parseID(s); err == nil {
			r.groups = append(r.groups, id)
		}
	}
	return true
}

// canSwitch says why the daemon cannot run commands with r's credentials;
// "" when it can. It can with CAP_SETUID and CAP_SETGID in its effective
// set (root normally has both; root under a unit whose
// CapabilityBoundingSet drops them does not), or when r's uid and gid are
// its own (then the command keeps the daemon's supplementary groups).
func canSwitch(r *runAs, acc accounts) string {
	uid, gid, caps, err := acc.self()
	if err != nil {
		return fmt.Sprintf("cannot tell whether the daemon may switch users: %v", err)
	}
	hasUID, hasGID := caps&(1<<capSetUID) != 0, caps&(1<<capSetGID) != 0
	if hasUID && hasGID {
		return ""
	}
	if r.uid == uint32(uid) && r.gid == uint32(gid) {
		r.keepGroups = true
		return ""
	}
	var missing []string
	if !hasUID {
		missing = append(missing, "CAP_SETUID")
	}
	if !hasGID {
		missing = append(missing, "CAP_SETGID")
	}
	return fmt.Sprintf("the daemon runs as uid %d without %s, so it cannot run commands as %s (uid %d, gid %d); run it as root or grant the capabilities (see run_as in docs/handlers.md)",
		uid, strings.Join(missing, " and "), r.name, r.uid, r.gid)
}

// lookupMessage explains a failed user or group look-up.
func lookupMessage(kind, name string, err error) string {
	var uu user.UnknownUserError
	var uid user.UnknownUserIdError
	var ug user.UnknownGroupError
	var gid user.UnknownGroupIdError
	if errors.As(err, &uu) || errors.As(err, &uid) || errors.As(err, &ug) || errors.As(err, &gid) {
		return fmt.Sprintf("no %s %q on this system", kind, name)
	}
	return fmt.Sprintf("cannot look up %s %q: %v", kind, name, err)
}

func parseID(s string) (uint32, error) {
	v, err := strconv.ParseUint(s, 10, 32)
	return uint32(v), err
}
