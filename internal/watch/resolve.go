package watch

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// maxHops bounds symlink resolution, as the kernel's ELOOP limit does.
const maxHops = 40

// chain is what resolving the config path met on its way: every symlink
// (by its own path, not its target) and the final path. A change to any of
// them can change what reading the config path returns.
type chain struct {
	links []string
	final string
}

// names returns every path in the chain: the links and the final path.
func (c chain) names() []string {
	return append(append([]string(nil), c.links...), c.final)
}

// dirs returns the directories holding the chain's paths, without
// duplicates, in the order met.
func (c chain) dirs() []string {
	var out []string
	seen := map[string]bool{}
	for _, p := range c.names() {
		d := filepath.Dir(p)
		if !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	return out
}

// resolve walks the absolute path p component by component, following
// symlinks, and records every link it meets. A missing component is not an
// error: resolution stops there and the unresolved remainder becomes the
// final path (the file may be between a delete and a create).
func resolve(p string) (chain, error) {
	var c chain
	p = filepath.Clean(p)
	for hops := 0; ; {
		link, target, err := firstLink(p)
		if err != nil {
			c.final = p
			if errors.Is(err, os.ErrNotExist) {
				return c, nil
			}
			return c, err
		}
		if link == "" {
			c.final = p
			return c, nil
		}
		if hops++; hops > maxHops {
			return c, fmt.Errorf("resolve %s: too many levels of symbolic links", p)
		}
		c.links = append(c.links, link)
		p = target
	}
}

// firstLink finds the first symlink among the components of the absolute
// path p. It returns that link's path and p with the link replaced by its
// target, or "" when p contains no symlink.
func firstLink(p string) (link, rewritten string, err error) {
	parts := strings.Split(strings.TrimPrefix(p, string(filepath.Separator)), string(filepath.Separator))
	cur := string(filepath.Separator)
	for i, part := range parts {
		if part == "" {
			continue
		}
		next := filepath.Join(cur, part)
		fi, err := os.Lstat(next)
		if err != nil {
			return "", "", err
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			cur = next
			continue
		}
		target, err := os.Readlink(next)
		if err != nil {
			return "", "", err
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(cur, target)
		}
		rest := append([]string{target}, parts[i+1:]...)
		return next, filepath.Join(rest...), nil
	}
	return "", "", nil
}
