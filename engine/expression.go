package engine

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/types"
	"github.com/expr-lang/expr/vm"
	"gopkg.in/yaml.v3"
)

// Names in the expression environment (docs/handlers.md lists them).
const (
	envPayload    = "payload"
	envParams     = "params"
	envMethod     = "method"
	envDeviceID   = "deviceId"
	envModuleID   = "moduleId"
	envRequestID  = "requestId"
	envExitCode   = "exitCode"
	envStdout     = "stdout"
	envStderr     = "stderr"
	envDurationMs = "durationMs"
	envTruncated  = "truncated"
)

// needs is the set of environment names a program reads, so that a call
// builds only the part of the environment its programs use.
type needs uint16

const (
	needPayload needs = 1 << iota
	needParams
	needMethod
	needDeviceID
	needModuleID
	needRequestID
	needResult // exitCode, stdout, stderr, durationMs, truncated
)

var needByName = map[string]needs{
	envPayload: needPayload, envParams: needParams, envMethod: needMethod,
	envDeviceID: needDeviceID, envModuleID: needModuleID, envRequestID: needRequestID,
	envExitCode: needResult, envStdout: needResult, envStderr: needResult,
	envDurationMs: needResult, envTruncated: needResult,
}

// program is one compiled expression.
type program struct {
	prog  *vm.Program
	path  string // YAML path, for runtime error messages
	needs needs
}

// envTypes is the static type of the expression environment of one method.
// withResult adds the names that exist after run/shell.
func envTypes(params []*param, withResult bool) types.Map {
	pt := types.Map{}
	for _, p := range params {
		pt[p.name] = p.exprType()
	}
	m := types.Map{
		envPayload: types.Any, envParams: pt, envMethod: types.String,
		envDeviceID: types.String, envModuleID: types.String, envRequestID: types.String,
		"null": types.Nil, // JSON spelling of nil; never set, so it reads as nil
	}
	if withResult {
		m[envExitCode] = types.Int
		m[envStdout] = types.String
		m[envStderr] = types.String
		m[envDurationMs] = types.Int
		m[envTruncated] = types.Bool
	}
	return m
}

// exprFuncs are the functions available to expressions, bound to one Set's
// Options. Functions that read the host (hostname, uptime) read it at call
// time; env reads the snapshot of the daemon's environment taken at load.
type exprFuncs struct {
	now      func() time.Time
	hostname func() (string, error)
	uptime   func() (time.Duration, error)
	environ  map[string]string
}

// options returns the expr options declaring the functions with their types.
func (f *exprFuncs) options() []expr.Option {
	return []expr.Option{
		expr.Function("now", func(...any) (any, error) { return f.now(), nil }, new(func() time.Time)),
		expr.Function("hostname", func(...any) (any, error) { return f.hostname() }, new(func() string)),
		expr.Function("uptime", func(...any) (any, error) {
			d, err := f.uptime()
			return d.Seconds(), err
		}, new(func() float64)),
		expr.Function("env", func(a ...any) (any, error) { return f.env(a[0].(string)), nil }, new(func(string) string)),
	}
}

// env returns a variable of the daemon's environment as it was at load.
// Names starting with IOTHUB_ read as "" so that connection strings never
// reach a reply.
func (f *exprFuncs) env(name string) string {
	if strings.HasPrefix(name, "IOTHUB_") {
		return ""
	}
	return f.environ[name]
}

// systemUptime reads the host's uptime from /proc/uptime.
func systemUptime() (time.Duration, error) {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return 0, fmt.Errorf("uptime: %w", err)
	}
	first, _, _ := strings.Cut(string(b), " ")
	s, err := strconv.ParseFloat(first, 64)
	if err != nil {
		return 0, fmt.Errorf("uptime: parse /proc/uptime: %w", err)
	}
	return time.Duration(s * float64(time.Second)), nil
}

// exprKind is what an expression must yield.
type exprKind int

const (
	yieldAny exprKind = iota
	yieldBool
	yieldInt
)

// compileExpr compiles src (found in node n at rune offset off of its value)
// against env. Errors become diagnostics positioned inside the expression
// where the YAML style allows it.
func (l *loader) compileExpr(n *yaml.Node, path, src string, off int, env types.Map, fns []expr.Option, kind exprKind) *program {
	if strings.TrimSpace(src) == "" {
		l.errorf(n, path, "empty expression")
		return nil
	}
	opts := append([]expr.Option{expr.Env(env)}, fns...)
	opts = append(opts, costOptions()...)
	if kind == yieldBool {
		opts = append(opts, expr.AsBool())
	}
	prog, err := compileSafely(src, opts)
	if err != nil {
		l.exprError(n, path, off, err, env)
		return nil
	}
	if kind == yieldInt {
		switch prog.Node().Type().Kind() {
		case reflect.Int, reflect.Int64, reflect.Float64, reflect.Interface:
		default:
			l.errorf(n, path, "must be an integer expression, got %s", prog.Node().Type())
			return nil
		}
	}
	p := &program{prog: prog, path: path}
	root := prog.Node()
	ast.Walk(&root, needsVisitor{&p.needs})
	return p
}

// compileSafely compiles, turning a panic inside expr into an error.
func compileSafely(src string, opts []expr.Option) (p *vm.Program, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("cannot compile expression: %v", r)
		}
	}()
	return expr.Compile(src, opts...)
}

type needsVisitor struct{ n *needs }

func (v needsVisitor) Visit(node *ast.Node) {
	if id, ok := (*node).(*ast.IdentifierNode); ok {
		*v.n |= needByName[id.Value]
	}
}

// exprError records a compile error at the best position: inside a one-line
// scalar the column of the offending token, else the scalar itself.
func (l *loader) exprError(n *yaml.Node, path string, off int, err error, env types.Map) {
	msg := err.Error()
	line, col := n.Line, n.Column
	if fe, ok := errors.AsType[*file.Error](err); ok {
		msg = fe.Message
		if name, ok := strings.CutPrefix(msg, "unknown name "); ok {
			names := make([]string, 0, len(env))
			for k := range env {
				if k != "null" {
					names = append(names, k)
				}
			}
			slices.Sort(names)
			if sg := suggest(name, names); sg != "" {
				msg += fmt.Sprintf("; did you mean %q?", sg)
			} else {
				msg += " (the environment has " + strings.Join(names, ", ") + ")"
			}
		}
		oneLine := !strings.Contains(n.Value, "\n") && n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) == 0
		if oneLine && fe.Line <= 1 {
			if n.Style&(yaml.SingleQuotedStyle|yaml.DoubleQuotedStyle) != 0 {
				col++
			}
			col += off + fe.Column
		}
	}
	l.errorf(n, path, "%s", msg)
	d := &l.diags[len(l.diags)-1]
	d.Line, d.Col = line, col
}

// evaluator runs programs with pooled VMs; it is safe for concurrent use.
type evaluator struct {
	vms sync.Pool
	// clock times evaluations against exprTimeLimit; nil is time.Now.
	// Tests set a clock that advances on every reading.
	clock func() time.Time
}

// run evaluates p against env within the bounds of exprcost.go (time,
// produced bytes, expr's element budget). A runtime failure, a bound
// included, is an error naming the expression's YAML path. env gets the
// evaluation's meter under a key no expression can name.
func (e *evaluator) run(p *program, env map[string]any) (any, error) {
	m, _ := e.vms.Get().(*vm.VM)
	if m == nil {
		m = &vm.VM{}
	}
	if env == nil {
		env = make(map[string]any, 1)
	}
	env[meterKey] = newMeter(e.clock)
	out, err := m.Run(p.prog, env)
	delete(env, meterKey)
	e.vms.Put(m)
	if err != nil {
		msg := err.Error()
		if fe, ok := errors.AsType[*file.Error](err); ok {
			msg = fe.Message
		}
		if strings.Contains(msg, "json.Number") {
			msg += bigIntHint
		}
		return nil, fmt.Errorf("%s: %s", p.path, msg)
	}
	return out, nil
}

// bigIntHint explains a failed operation on a payload integer beyond ±2^53.
const bigIntHint = " (a payload integer beyond ±2^53 is kept exact as json.Number, which supports no arithmetic or comparison; " +
	"declare it as an integer parameter to compute with it within int64, or pass it on unchanged)"
