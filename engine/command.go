package engine

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/expr-lang/expr/types"
	"gopkg.in/yaml.v3"
)

// shellPath is the shell used by `shell:` methods.
const shellPath = "/bin/sh"

// parseCommand compiles run or shell with env and timeout; nil when the
// method has no command.
func (l *loader) parseCommand(by map[string]field, path string, pre types.Map, mc *methodCtx) *command {
	run, hasRun := by["run"]
	sh, hasShell := by["shell"]
	if hasRun && hasShell {
		l.errorf(sh.keyNode, join(path, "shell"), "run and shell are mutually exclusive; use run (argv, no shell) or shell (a /bin/sh script), not both")
		return nil
	}
	if !hasRun && !hasShell {
		for _, k := range []string{"env", "timeout"} {
			if f, ok := by[k]; ok {
				l.warnf(f.keyNode, join(path, k), "%s has no effect without run or shell", k)
			}
		}
		return nil
	}
	c := &command{timeout: mc.defaults.Timeout}
	if hasRun {
		l.parseRun(c, run.val, join(path, "run"), pre, mc)
	} else {
		l.parseShell(c, sh.val, join(path, "shell"))
	}
	if e, ok := by["env"]; ok {
		c.env = l.parseEnv(e.val, join(path, "env"), pre, mc)
	}
	if t, ok := by["timeout"]; ok {
		if d, ok := l.duration(t.val, join(path, "timeout")); ok {
			c.timeout = d // warnings depend on async and detach: parseActions
		}
	}
	return c
}

// maxUsefulTimeout is IoT Hub's longest responseTimeoutInSeconds.
const maxUsefulTimeout = 300 * time.Second

func (l *loader) parseRun(c *command, n *yaml.Node, path string, pre types.Map, mc *methodCtx) {
	if n.Kind != yaml.SequenceNode {
		l.errorf(n, path, "run must be a list (argv), such as [uname, -a]; for a command line use shell:")
		return
	}
	if len(n.Content) == 0 {
		l.errorf(n, path, "run must not be empty: give at least the program to execute")
		return
	}
	for i, item := range n.Content {
		item = resolve(item)
		ip := fmt.Sprintf("%s[%d]", path, i)
		s, ok := l.scalar(item, ip)
		if !ok {
			continue
		}
		if i == 0 {
			l.parseProgram(c, item, ip, s, mc)
			continue
		}
		if t := l.compileTemplate(item, ip, s, pre, mc.fns); t != nil {
			c.args = append(c.args, t)
		}
	}
}

// parseProgram checks run[0], which is never interpolated, and resolves it.
func (l *loader) parseProgram(c *command, n *yaml.Node, path, s string, mc *methodCtx) {
	switch {
	case s == "":
		l.errorf(n, path, "the program (run[0]) must not be empty")
		return
	case strings.Contains(s, "${"):
		l.errorf(n, path, "the program (run[0]) cannot contain ${...}: a payload must never choose what runs")
		return
	}
	c.name = s
	if strings.Contains(s, "/") {
		p := s
		if !filepath.IsAbs(p) {
			p = filepath.Join(mc.dir, p)
		}
		c.path = p
		if !isExecutable(p) {
			l.warnf(n, path, "%s is not an executable file on this machine", p)
		}
		return
	}
	if p := lookPath(s, mc.searchPath); p != "" {
		c.path = p
		return
	}
	l.warnf(n, path, "command %q not found in PATH (%s) on this machine", s, mc.searchPath)
}

func (l *loader) parseShell(c *command, n *yaml.Node, path string) {
	s, ok := l.scalar(n, path)
	if !ok {
		return
	}
	if strings.TrimSpace(s) == "" {
		l.errorf(n, path, "shell script must not be empty")
		return
	}
	for _, bad := range []string{"${params", "${payload", "${ params", "${ payload"} {
		if strings.Contains(s, bad) {
			l.warnf(n, path, "shell scripts are not interpolated: %s... is shell syntax here; read parameters from $METHODD_PARAM_<NAME>", bad)
			break
		}
	}
	c.shell, c.name, c.path, c.script = true, shellPath, shellPath, s
}

func (l *loader) parseEnv(n *yaml.Node, path string, pre types.Map, mc *methodCtx) []envVar {
	var out []envVar
	for _, f := range l.mapping(n, path, nil) {
		p := join(path, f.key)
		switch {
		case !validEnvName(f.key):
			l.errorf(f.keyNode, p, "invalid environment variable name %q (letters, digits and _; not starting with a digit)", f.key)
			continue
		case strings.HasPrefix(f.key, "METHODD_"):
			l.errorf(f.keyNode, p, "METHODD_* variables are set by methodd and cannot be overridden")
			continue
		}
		s, ok := l.scalar(f.val, p)
		if !ok {
			continue
		}
		if t := l.compileTemplate(f.val, p, s, pre, mc.fns); t != nil {
			out = append(out, envVar{name: f.key, val: t})
		}
	}
	return out
}

// lookPath finds an executable named name in the colon-separated dirs of
// path; relative directories are ignored. "" when not found.
func lookPath(name, path string) string {
	for _, dir := range filepath.SplitList(path) {
		if dir == "" || !filepath.IsAbs(dir) {
			continue
		}
		if p := filepath.Join(dir, name); isExecutable(p) {
			return p
		}
	}
	return ""
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}
