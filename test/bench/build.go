package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// modulePath is the module whose checkout the harness builds.
const modulePath = "github.com/methodd/methodd"

// binaries are the executables a run measures.
type binaries struct {
	methodd   string // the daemon (devices a and b)
	rawdevice string // the paho floor (device c)
}

// findRoot walks up from dir to the directory whose go.mod declares
// modulePath.
func findRoot(dir string) (string, error) {
	for range 64 { // bounded: deeper than any real path
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(b, []byte("module "+modulePath+"\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	return "", fmt.Errorf("no go.mod of %s above the working directory", modulePath)
}

// build compiles methodd (from root) and the raw device (its own module
// under test/bench/rawdevice) into dir the way methodd ships (see
// goBuild). The raw device is built the same way: like for like. With
// symbols both keep their symbol tables, for perf.
func build(ctx context.Context, root, dir string, symbols bool) (binaries, error) {
	b := binaries{methodd: filepath.Join(dir, "methodd"), rawdevice: filepath.Join(dir, "rawdevice")}
	if err := goBuild(ctx, root, b.methodd, symbols); err != nil {
		return b, err
	}
	return b, goBuild(ctx, filepath.Join(root, "test", "bench", "rawdevice"), b.rawdevice, symbols)
}

// goBuild compiles the main package in src to out as methodd ships (the
// module's main_test.go buildMethodd, scripts/package.sh): CGO_ENABLED=0
// -trimpath -tags nethttpomithttp2 -ldflags='-s -w': static, stripped,
// without net/http's HTTP/2; with symbols, unstripped. A failure carries
// the compiler's output.
func goBuild(ctx context.Context, src, out string, symbols bool) error {
	ldflags := "-ldflags=-s -w"
	if symbols {
		ldflags = "-ldflags="
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-tags", "nethttpomithttp2", ldflags, "-o", out, ".")
	cmd.Dir, cmd.Env = src, append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build in %s: %w\n%s", src, err, b)
	}
	return nil
}

// machineInfo describes where a run happened.
type machineInfo struct {
	cpu      string // model name from /proc/cpuinfo
	cpus     int    // online CPUs usable by this process (nproc)
	memTotal string // MemTotal from /proc/meminfo
	kernel   string
	goVer    string // toolchain that built the binaries
	nodeVer  string
}

// describeMachine reads /proc and asks the go and node tools their versions.
func describeMachine(ctx context.Context) machineInfo {
	m := machineInfo{cpu: "unknown", cpus: runtime.NumCPU(), memTotal: "unknown", kernel: "unknown", goVer: "unknown", nodeVer: "not found"}
	if v, ok := procField("/proc/cpuinfo", "model name"); ok {
		m.cpu = v
	}
	if v, ok := procField("/proc/meminfo", "MemTotal"); ok {
		m.memTotal = v
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.kernel = strings.TrimSpace(string(b))
	}
	if out, err := exec.CommandContext(ctx, "go", "env", "GOVERSION").Output(); err == nil {
		m.goVer = strings.TrimSpace(string(out))
	}
	if out, err := exec.CommandContext(ctx, "node", "--version").Output(); err == nil {
		m.nodeVer = strings.TrimSpace(string(out))
	}
	return m
}

// procField returns the value of the first "key : value" line of a /proc
// file.
func procField(path, key string) (string, bool) {
	f, err := os.Open(path)
	if err != nil {
		return "", false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}
