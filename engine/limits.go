package engine

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// limits is a method's limits: the rlimits of its command, in the order
// they were written.
type limits struct {
	list []rlimit
}

// rlimit is one entry of limits.
type rlimit struct {
	key      string // memory, cpu, ...
	resource int    // rlimitAS, ...: unix.RLIMIT_* on Linux
	value    uint64 // bytes, seconds or a count
	text     string // the value as written, for messages: 64MiB, 10s
}

// parseLimits reads limits: {memory, cpu, open_files, processes, output}.
// nil when there is an error (reported at its node) or nothing is set.
func (l *loader) parseLimits(n *yaml.Node, path string) *limits {
	before := l.errCount()
	ls := &limits{}
	for _, f := range l.mapping(n, path, limitKeys()) {
		p := join(path, f.key)
		r := rlimit{key: f.key}
		var ok bool
		switch f.key {
		case "memory":
			r.resource = rlimitAS
			r.value, r.text, ok = l.size(f.val, p)
		case "output":
			r.resource = rlimitFSIZE
			r.value, r.text, ok = l.size(f.val, p)
		case "cpu":
			r.resource = rlimitCPU
			r.value, r.text, ok = l.cpuSeconds(f.val, p)
		case "open_files":
			r.resource = rlimitNOFILE
			r.value, r.text, ok = l.count(f.val, p)
		case "processes":
			r.resource = rlimitNPROC
			r.value, r.text, ok = l.count(f.val, p)
		}
		if ok {
			ls.list = append(ls.list, r)
		}
	}
	if l.errCount() > before || len(ls.list) == 0 {
		return nil
	}
	return ls
}

// sizeRE is a size with an optional unit.
var sizeRE = regexp.MustCompile(`^([0-9]+) ?([KMGT]i?B|kB|B)?$`)

// shortUnitRE is a size with a one-letter unit, which is ambiguous.
var shortUnitRE = regexp.MustCompile(`^([0-9]+) ?([kKmMgGtT])$`)

// sizeUnits are the multipliers of the units sizeRE accepts.
var sizeUnits = map[string]uint64{
	"": 1, "B": 1,
	"kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
	"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
}

const sizeForms = "a number of bytes or a whole number with a unit: B, KiB, MiB, GiB, TiB (powers of 1024) or kB, MB, GB, TB (powers of 1000), such as 64MiB or 100MB"

// size decodes a positive byte size: an integer (bytes) or "64MiB".
func (l *loader) size(n *yaml.Node, path string) (uint64, string, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		l.errorf(n, path, "must be a size: %s; got %s", sizeForms, describe(n))
		return 0, "", false
	}
	m := sizeRE.FindStringSubmatch(strings.ReplaceAll(n.Value, "_", ""))
	if m == nil {
		if strings.HasPrefix(n.Value, "-") {
			l.errorf(n, path, "must be positive, got %s", n.Value)
		} else if m := shortUnitRE.FindStringSubmatch(n.Value); m != nil {
			u := strings.ToUpper(m[2])
			l.errorf(n, path, "invalid size %q: say %s%siB (powers of 1024) or %s%sB (powers of 1000)", n.Value, m[1], u, m[1], u)
		} else {
			l.errorf(n, path, "invalid size %q: use %s", n.Value, sizeForms)
		}
		return 0, "", false
	}
	v, err := strconv.ParseUint(m[1], 10, 64)
	mult := sizeUnits[m[2]]
	if err != nil || v > math.MaxInt64/mult {
		l.errorf(n, path, "size %s is too large", n.Value)
		return 0, "", false
	}
	if v == 0 {
		l.errorf(n, path, "must be positive, got %s", n.Value)
		return 0, "", false
	}
	text := n.Value
	if m[2] == "" {
		text += " bytes"
	}
	return v * mult, text, true
}

// cpuSeconds decodes a CPU time: a duration of whole seconds, at least 1s
// (RLIMIT_CPU counts seconds).
func (l *loader) cpuSeconds(n *yaml.Node, path string) (uint64, string, bool) {
	d, ok := l.duration(n, path)
	if !ok {
		return 0, "", false
	}
	if d < time.Second || d%time.Second != 0 {
		l.errorf(n, path, "must be a whole number of seconds, at least 1s (the kernel counts CPU time in seconds), got %s", n.Value)
		return 0, "", false
	}
	return uint64(d / time.Second), n.Value, true
}

// count decodes a positive integer.
func (l *loader) count(n *yaml.Node, path string) (uint64, string, bool) {
	v, ok := l.intValue(n, path)
	if !ok {
		return 0, "", false
	}
	if v < 1 {
		l.errorf(n, path, "must be at least 1, got %d", v)
		return 0, "", false
	}
	return uint64(v), n.Value, true
}

// limitStop is a command stopped by one of its limits, or, for memory,
// probably stopped by it.
type limitStop struct {
	rlimit
	cause    string // SIGXCPU, "exit status 1", ...
	signaled bool   // the command died by a signal (or a shell's child did)
	probable bool   // a guess: only memory is never certain
}

// message is the error text of the reply.
func (s *limitStop) message(method string) string {
	if s.probable {
		return fmt.Sprintf("method %q stopped (%s); limits.%s (%s) was probably exceeded", method, s.cause, s.key, s.text)
	}
	what := "it used up its CPU time"
	if s.key == "output" {
		what = "it tried to write a file larger than that"
	}
	return fmt.Sprintf("method %q was stopped by limits.%s (%s): %s (%s)", method, s.key, s.text, what, s.cause)
}

// limitPayload is the reply payload of a command its limit stopped:
// {"error": ..., "limit": "limits.cpu", "exitCode": N, "stdout": ...,
// "stderr": ...}, the output cut to fit as in commandPayload (appendResult).
func limitPayload(method string, res *procResult) []byte {
	msg := boundText(res.limit.message(method))
	b := make([]byte, 0, 256)
	b = append(b, `{"error":`...)
	b = appendJSONString(b, msg)
	b = append(b, `,"limit":`...)
	b = appendJSONString(b, "limits."+res.limit.key)
	b = append(b, ',')
	return append(appendResult(b, res), '}')
}
