package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// shippedBuild is how methodd is built for gateways (README "Install"): a
// static, stripped binary. Tests that drive the binary build it exactly so,
// once per test run, so that what they measure is what ships.
var shippedBuild = []string{"build", "-trimpath", "-ldflags=-s -w", "-o"}

// testBinDir holds the binary built for this test run; set once in TestMain.
var testBinDir string

var buildOnce = sync.OnceValue(func() error {
	bin := filepath.Join(testBinDir, "methodd")
	cmd := exec.Command("go", append(shippedBuild, bin, ".")...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
	}
	return nil
})

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "methodd-test-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	testBinDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// buildMethodd returns the path of the binary built (once) for this run.
func buildMethodd(t *testing.T) string {
	t.Helper()
	if err := buildOnce(); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(testBinDir, "methodd")
}
