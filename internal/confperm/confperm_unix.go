//go:build unix

package confperm

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// Check inspects the config file at path and every directory above it,
// following symlinks (the link's own directories and the target's chain are
// all checked). Each must be owned by root (uid 0) or daemonUID and not be
// group- or world-writable; a directory owned by root with the sticky bit
// (such as /tmp) may be writable by others. It returns nil when all is well,
// the *Error values (joined) of every offending path, or an error when the
// path cannot be inspected (for example, it does not exist).
func Check(path string, daemonUID int) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("permissions of %s: %w", path, err)
	}
	var problems []error
	seen := map[string]bool{}
	p := abs
	for hops := 0; ; hops++ {
		if hops > maxHops {
			return fmt.Errorf("permissions of %s: too many levels of symbolic links", path)
		}
		next, err := walk(p, daemonUID, seen, &problems)
		if err != nil {
			return fmt.Errorf("permissions of %s: %w", path, err)
		}
		if next == "" {
			return errors.Join(problems...)
		}
		p = next
	}
}

// walk checks the components of the absolute path p from the root down. At
// the first symlink it returns p rewritten through the link's target, for
// the caller to walk again; it returns "" when p is fully resolved. Each
// real file or directory is checked once (seen).
func walk(p string, daemonUID int, seen map[string]bool, problems *[]error) (string, error) {
	parts := strings.Split(p, string(filepath.Separator))
	cur := string(filepath.Separator)
	for i := 0; i <= len(parts); i++ {
		if i > 0 {
			if parts[i-1] == "" {
				continue
			}
			cur = filepath.Join(cur, parts[i-1])
		}
		fi, err := os.Lstat(cur)
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			target, err := os.Readlink(cur)
			if err != nil {
				return "", err
			}
			if !filepath.IsAbs(target) {
				target = filepath.Join(filepath.Dir(cur), target)
			}
			return filepath.Join(append([]string{target}, parts[i:]...)...), nil
		}
		if !seen[cur] {
			seen[cur] = true
			if e := inspect(cur, fi, daemonUID); e != nil {
				*problems = append(*problems, e)
			}
		}
	}
	return "", nil
}

// inspect applies the rule to one file or directory.
func inspect(path string, fi fs.FileInfo, daemonUID int) *Error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return &Error{Path: path, Mode: fi.Mode(), UID: -1, Reason: "has no known owner", Fix: "keep the config on a local file system"}
	}
	uid := int(st.Uid)
	e := &Error{Path: path, Mode: fi.Mode(), UID: uid}
	switch {
	case uid != 0 && uid != daemonUID:
		e.Reason = fmt.Sprintf("is owned by neither root nor the daemon's user (%s)", owner(daemonUID))
		e.Fix = "chown root " + path
	case fi.Mode().Perm()&0o022 == 0:
		return nil
	case fi.IsDir() && fi.Mode()&fs.ModeSticky != 0 && uid == 0:
		return nil // like /tmp: others may add entries but not replace ours
	case fi.Mode().Perm()&0o002 != 0:
		e.Reason = "is world-writable"
		e.Fix = "chmod go-w " + path
	default:
		e.Reason = "is group-writable"
		e.Fix = "chmod go-w " + path
	}
	return e
}

// maxHops bounds symlink resolution, as the kernel's ELOOP limit does.
const maxHops = 40
