package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const modulePath = "github.com/methodd/methodd"

// allowedImports is the house plan (design §8): for every package of the
// module (named below the module path; "." is the command), the packages it
// may import besides the standard library — the module's own by name,
// third-party ones by module prefix. Dependencies point one way: main → cli
// → daemon/invoke/localhub → engine/device → iothub. A new package, or a new
// edge, is added here on purpose or not at all.
var allowedImports = map[string][]string{
	".":                     {"internal/cli"},
	"internal/cli":          {"engine", "invoke", "iothub", "internal/daemon", "internal/device", "internal/handlersfile", "internal/localhub", "internal/logbatch", "internal/logkey", "internal/metrics", "internal/provision", "golang.org/x/term"},
	"internal/daemon":       {"engine", "internal/device", "internal/handlersfile", "internal/logkey", "internal/sdnotify", "internal/watch"},
	"internal/handlersfile": {"engine", "internal/confperm"},
	"internal/provision":    {"iothub", "internal/device", "internal/logkey"},
	"invoke":                {"iothub"},
	"internal/localhub":     {"iothub", "internal/logkey", "internal/twindoc", "internal/twinquery", "github.com/mochi-mqtt/server/v2", "github.com/gorilla/websocket", "golang.org/x/sys/unix", "golang.org/x/sys/windows"},
	"internal/twindoc":      {"iothub"},
	"internal/twinquery":    {},
	"internal/device":       {"iothub", "internal/logkey", "github.com/eclipse/paho.mqtt.golang"},
	"engine":                {"internal/logkey", "github.com/expr-lang/expr", "gopkg.in/yaml.v3", "golang.org/x/sys/unix"},
	"iothub":                {},
	"internal/watch":        {"internal/logkey", "github.com/fsnotify/fsnotify"},
	"internal/sdnotify":     {"golang.org/x/sys/unix"},
	"internal/confperm":     {},
	"internal/metrics":      {"internal/logkey"},
	"internal/logbatch":     {},
	"internal/logkey":       {},
	// Test machinery: never linked into the binary (TestBinaryLinksNoTestPackage).
	"internal/testkit":    {},
	"internal/procstat":   {},
	"internal/faultproxy": {},
	"test/bench":          {"iothub", "internal/localhub", "internal/procstat", "internal/testkit"},
	"test/conformance":    {},
	"test/reliability":    {},
	"test/packaging":      {},
}

// forbiddenStd lists standard packages a module package must not import.
var forbiddenStd = map[string][]string{
	// The daemon never touches process signals: the run command turns
	// SIGHUP into reload requests (one owner).
	"internal/daemon": {"os/signal"},
	"engine":          {"os/signal", "net", "net/http"},
	"iothub":          {"os", "os/exec", "net", "net/http"},
}

// testPackages are what the binary must never link. The Prometheus
// modules are test-only: tests parse /metrics with prometheus/common's
// parser, while internal/metrics writes the format itself, since linking
// client_golang costs every daemon ~2.5 MB of idle RSS.
var testPackages = []string{"internal/testkit", "internal/faultproxy", "internal/procstat", "test/", "github.com/prometheus/"}

// goList returns, per module package (named below the module), the fields
// of `go list -f` for the given patterns.
func goList(t *testing.T, field string, patterns ...string) map[string][]string {
	t.Helper()
	args := append([]string{"list", "-f", `{{.ImportPath}}{{range .` + field + `}} {{.}}{{end}}`}, patterns...)
	out, err := exec.Command("go", args...).Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	m := map[string][]string{}
	for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		m[short(f[0])] = f[1:]
	}
	return m
}

// short names a module package below the module path ("." for the module
// itself); other paths are returned unchanged.
func short(p string) string {
	if p == modulePath {
		return "."
	}
	return strings.TrimPrefix(p, modulePath+"/")
}

// isStd reports whether p is a standard-library package.
func isStd(p string) bool {
	first, _, _ := strings.Cut(p, "/")
	return !strings.Contains(first, ".")
}

// TestImportsFollowThePlan checks every direct import of every package of
// the module against allowedImports and forbiddenStd.
func TestImportsFollowThePlan(t *testing.T) {
	for pkg, imports := range goList(t, "Imports", "./...") {
		allowed, ok := allowedImports[pkg]
		if !ok {
			t.Errorf("package %s is not in the house plan (allowedImports in deps_test.go)", pkg)
			continue
		}
		for _, imp := range imports {
			switch {
			case isStd(imp):
				if slices.Contains(forbiddenStd[pkg], imp) {
					t.Errorf("%s imports %s, which it must not", pkg, imp)
				}
			case !slices.ContainsFunc(allowed, func(a string) bool { return short(imp) == a || strings.HasPrefix(imp, a+"/") || imp == a }):
				t.Errorf("%s imports %s, which the plan does not allow", pkg, short(imp))
			}
		}
	}
}

// TestBinaryLinksNoTestPackage: the binary's dependencies hold no test
// helper or suite.
func TestBinaryLinksNoTestPackage(t *testing.T) {
	for _, dep := range goList(t, "Deps", ".")["."] {
		for _, tp := range testPackages {
			if strings.HasPrefix(short(dep), tp) {
				t.Errorf("the binary links %s, a test package", short(dep))
			}
		}
	}
}

// TestTransportsHaveOneOwner: each third-party transport and the file
// watcher are imported by exactly one package of the module.
func TestTransportsHaveOneOwner(t *testing.T) {
	owner := map[string]string{
		"github.com/eclipse/paho.mqtt.golang": "internal/device",
		"github.com/mochi-mqtt/server/v2":     "internal/localhub",
		"github.com/fsnotify/fsnotify":        "internal/watch",
	}
	for pkg, imports := range goList(t, "Imports", "./...") {
		for _, imp := range imports {
			for lib, o := range owner {
				if strings.HasPrefix(imp, lib) && pkg != o {
					t.Errorf("%s imports %s directly; only %s may", pkg, imp, o)
				}
			}
		}
	}
}
