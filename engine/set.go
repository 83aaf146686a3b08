package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// defaultPath is the command search path when the daemon has no PATH.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Set is one loaded, validated and compiled handlers file. It is immutable
// after Parse and safe for concurrent calls.
type Set struct {
	file     string
	digest   string
	loadedAt time.Time
	warnings Diagnostics
	conn     Connection
	defaults Defaults
	tasks    TaskOptions
	methods  map[string]*method
	names    []string
	catalog  Reply

	log        *slog.Logger
	now        func() time.Time
	funcs      *exprFuncs
	eval       evaluator
	replies    replyBuffers
	runner     runner
	baseEnv    []string // PATH, LANG, HOME for commands
	searchPath string   // PATH for resolving run[0]
	dir        string   // the config file's directory

	// rt is the state shared by every Set an Engine serves (tasks, seen
	// request ids); an Engine sets it before the Set serves, else the Set
	// makes its own at first use (shared.go).
	rt     *shared
	rtOnce sync.Once
	taskID func() string // Options.NewTaskID or newTaskID
}

// newSet prepares an empty Set for file with the runtime parts from opts.
func newSet(file string, data []byte, opts Options) *Set {
	sum := sha256.Sum256(data)
	s := &Set{
		file:     file,
		digest:   hex.EncodeToString(sum[:]),
		methods:  map[string]*method{},
		log:      opts.Logger,
		now:      opts.Now,
		defaults: Defaults{Timeout: DefaultTimeout, Concurrency: DefaultConcurrency, DuplicateWindow: DefaultDuplicateWindow},
		runner:   runner{killGrace: opts.KillGrace, drainWait: opts.DrainTimeout, cgroupDir: sync.OnceValue(ownCgroupDir)},
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.runner.killGrace <= 0 {
		s.runner.killGrace = DefaultKillGrace
	}
	if s.runner.drainWait <= 0 {
		s.runner.drainWait = DefaultDrainTimeout
	}
	s.loadedAt = s.now()
	s.taskID = opts.NewTaskID
	if s.taskID == nil {
		s.taskID = newTaskID
	}
	environ := os.Environ
	if opts.Environ != nil {
		environ = opts.Environ
	}
	envMap := map[string]string{}
	for _, kv := range environ() {
		if k, v, ok := strings.Cut(kv, "="); ok {
			envMap[k] = v
		}
	}
	s.funcs = &exprFuncs{now: s.now, hostname: opts.Hostname, uptime: opts.Uptime, environ: envMap}
	if s.funcs.hostname == nil {
		s.funcs.hostname = os.Hostname
	}
	if s.funcs.uptime == nil {
		s.funcs.uptime = systemUptime
	}
	s.searchPath = envMap["PATH"]
	if s.searchPath == "" {
		s.searchPath = defaultPath
	}
	s.baseEnv = []string{"PATH=" + s.searchPath}
	for _, k := range []string{"LANG", "HOME"} {
		if v, ok := envMap[k]; ok {
			s.baseEnv = append(s.baseEnv, k+"="+v)
		}
	}
	s.dir, _ = os.Getwd()
	if file != "" {
		if abs, err := filepath.Abs(filepath.Dir(file)); err == nil {
			s.dir = abs
		}
	}
	return s
}

// finish computes what depends on the complete method table.
func (s *Set) finish() {
	s.names = make([]string, 0, len(s.methods))
	for name, m := range s.methods {
		s.names = append(s.names, name)
		m.limiter.Store(newLimiter(m.concurrency))
	}
	slices.Sort(s.names)
	s.catalog = s.buildCatalog()
}

// Methods returns every method name, built-ins included, sorted.
func (s *Set) Methods() []string { return slices.Clone(s.names) }

// Digest is the SHA-256 (hex) of the file's bytes; a reload of identical
// bytes can be skipped by comparing digests.
func (s *Set) Digest() string { return s.digest }

// LoadedAt is when the Set was parsed (Options.Now).
func (s *Set) LoadedAt() time.Time { return s.loadedAt }

// Warnings are the non-fatal diagnostics of the file.
func (s *Set) Warnings() Diagnostics { return slices.Clone(s.warnings) }

// Connection is the file's connection section, defaults applied and
// relative paths resolved against the file's directory.
func (s *Set) Connection() Connection { return s.conn }

// Defaults is the file's defaults section with the built-in defaults
// filled in.
func (s *Set) Defaults() Defaults { return s.defaults }

// File is the path the Set was loaded from, as given to Parse.
func (s *Set) File() string { return s.file }

// adoptLimiters makes every method of s whose concurrency limit equals the
// one of the same-named method in old share old's limiter, so calls still
// running on old count against the limit on s. Called before s serves.
func (s *Set) adoptLimiters(old *Set) {
	for name, m := range s.methods {
		if om, ok := old.methods[name]; ok && om.concurrency == m.concurrency {
			m.limiter.Store(om.limiter.Load())
		}
	}
}
