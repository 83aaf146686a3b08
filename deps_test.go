package main

import (
	"os/exec"
	"strings"
	"testing"
)

const modulePath = "github.com/methodd/methodd"

// TestDependencyBoundaries enforces design §6: dependencies point one way and
// each third-party transport is imported by exactly one package.
func TestDependencyBoundaries(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Deps}} {{.}}{{end}}`, "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		deps[strings.TrimPrefix(f[0], modulePath+"/")] = f[1:]
	}
	// forbidden[pkg] lists import-path prefixes pkg must not depend on.
	forbidden := map[string][]string{
		"iothub":            {modulePath + "/", "github.com/", "gopkg.in/", "golang.org/x/"},
		"engine":            {modulePath + "/internal/", modulePath + "/invoke", "github.com/eclipse/", "github.com/mochi-mqtt/", "github.com/fsnotify/"},
		"invoke":            {modulePath + "/engine", modulePath + "/internal/", "github.com/eclipse/", "github.com/mochi-mqtt/", "github.com/fsnotify/"},
		"internal/device":   {modulePath + "/engine", modulePath + "/invoke", modulePath + "/internal/localhub", "github.com/mochi-mqtt/", "github.com/fsnotify/", "github.com/expr-lang/"},
		"internal/localhub": {modulePath + "/engine", modulePath + "/invoke", modulePath + "/internal/device", "github.com/eclipse/", "github.com/fsnotify/", "github.com/expr-lang/"},
		"internal/watch":    {modulePath + "/"},
		"internal/sdnotify": {modulePath + "/", "github.com/", "gopkg.in/", "golang.org/x/"},
		"internal/logbatch": {modulePath + "/", "github.com/", "gopkg.in/", "golang.org/x/"},
		"internal/testkit":  {modulePath + "/", "github.com/", "gopkg.in/", "golang.org/x/"},
		"internal/serve":    {modulePath + "/invoke", modulePath + "/internal/localhub", "github.com/mochi-mqtt/", "github.com/fsnotify/"},
	}
	for pkg, bad := range forbidden {
		for _, d := range deps[pkg] {
			for _, b := range bad {
				if strings.HasPrefix(d, b) && !(pkg == "iothub" && d == modulePath+"/iothub") {
					t.Errorf("%s imports %s, which it must not (prefix %s)", pkg, d, b)
				}
			}
		}
	}
	// Each third-party transport has exactly one importer inside the module.
	only := map[string]string{
		"github.com/eclipse/paho.mqtt.golang": "internal/device",
		"github.com/mochi-mqtt/server/v2":     "internal/localhub",
		"github.com/fsnotify/fsnotify":        "internal/watch",
	}
	imports, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, "./...").Output()
	if err != nil {
		t.Fatalf("go list imports: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(imports)), "\n") {
		f := strings.Fields(line)
		pkg := strings.TrimPrefix(f[0], modulePath+"/")
		for _, imp := range f[1:] {
			for lib, owner := range only {
				if strings.HasPrefix(imp, lib) && pkg != owner {
					t.Errorf("%s imports %s directly; only %s may", pkg, imp, owner)
				}
			}
		}
	}
}
