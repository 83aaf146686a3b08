package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"

	"github.com/methodd/methodd/iothub"
)

// deviceKind is one of the four devices a run compares.
type deviceKind struct {
	key   string // a, b, c, d: the names
	title string
	id    string // its identity on the hub
	start func(h *harness, id string) (*proc, error)
}

// deviceKinds are the devices in the order they run.
func deviceKinds(skipNode bool) []deviceKind {
	// (b) is measured last in each cell: at 128 in flight it forks up to
	// 128 processes at once, which is over when its cell ends but lifts the
	// 1-minute load average for a while.
	k := []deviceKind{
		{"a", "methodd run, expression echo", "bench-a", func(h *harness, id string) (*proc, error) { return h.startDaemon(id, exprConfig) }},
		{"c", "raw paho echo (floor)", "bench-c", (*harness).startRaw},
		{"d", "Node SDK echo (azure-iot-device-mqtt)", "bench-d", (*harness).startNode},
		{"b", "methodd run, run: [/bin/true]", "bench-b", func(h *harness, id string) (*proc, error) { return h.startDaemon(id, execConfig) }},
	}
	if skipNode {
		k = slices.DeleteFunc(k, func(d deviceKind) bool { return d.key == "d" })
	}
	return k
}

// Handler files. %s is the hub's CA file; %d, in reloadConfig, the version
// the file answers with. Concurrency is above the largest in-flight count so
// that no call is refused with 429.
const (
	configHead = `version: 1
connection: {ca_file: %q}
defaults: {timeout: 30s, concurrency: 1024}
methods:
`
	exprConfig = configHead + `  echo:
    reply: {payload: 'payload'}
`
	execConfig = configHead + `  echo:
    run: [/bin/true]
    reply: {status: 'exitCode == 0 ? 200 : 500', payload: 'payload'}
`
	reloadConfig = exprConfig + `  version:
    reply: {payload: '{"v": %d}'}
`
)

// daemonFiles writes the handlers file and the connection-string file of a
// daemon into a fresh private directory and returns the handlers path.
func (h *harness) daemonFiles(id, config string) (cfgPath, csPath string, err error) {
	dir, err := os.MkdirTemp(h.work, "daemon-"+id+"-")
	if err != nil {
		return "", "", err
	}
	cfgPath, csPath = filepath.Join(dir, "handlers.yaml"), filepath.Join(dir, "connection-string")
	if err := os.WriteFile(cfgPath, []byte(config), 0o600); err != nil {
		return "", "", err
	}
	cs, ok := h.info.Devices[id]
	if !ok {
		return "", "", fmt.Errorf("device %s is not registered on the hub", id)
	}
	return cfgPath, csPath, os.WriteFile(csPath, []byte(cs+"\n"), 0o600)
}

// startDaemon starts `methodd run` as id with a config from template (its
// %q is the CA file). Ready is the daemon's READY=1 on its notification
// socket, which it sends once connected and subscribed (after the SUBACK of
// the methods subscription), as systemd sees it.
func (h *harness) startDaemon(id, template string) (*proc, error) {
	cfg, cs, err := h.daemonFiles(id, fmt.Sprintf(template, h.info.CAFile))
	if err != nil {
		return nil, err
	}
	return h.execDaemon(id, cfg, cs)
}

// execDaemon starts `methodd run` on existing files, with a notification
// socket in $NOTIFY_SOCKET for its readiness.
func (h *harness) execDaemon(id, cfg, cs string) (*proc, error) {
	return startProc(procSpec{
		name:   "methodd run (" + id + ")",
		path:   h.bins.methodd,
		args:   []string{"run", "--config", cfg, "--connection-string-file", cs, "--log-format", "json", "--log-level", "info"},
		env:    h.baseEnv(),
		dir:    h.work,
		notify: true,
	})
}

// startRaw starts the paho floor device. The harness mints its SAS token.
func (h *harness) startRaw(id string) (*proc, error) {
	cs, err := iothub.ParseDeviceConnectionString(h.info.Devices[id])
	if err != nil {
		return nil, fmt.Errorf("device %s: %w", id, err)
	}
	token, err := iothub.Sign(cs.Resource(), cs.SharedAccessKey, "", time.Now().Add(6*time.Hour))
	if err != nil {
		return nil, err
	}
	return startProc(procSpec{
		name: "rawdevice (" + id + ")",
		path: h.bins.rawdevice,
		args: []string{"-addr", h.info.MQTTAddr, "-ca", h.info.CAFile, "-client-id", cs.ClientID(),
			"-username", iothub.Username(cs.HostName, cs.ClientID(), "methodd-bench-rawdevice")},
		env:     append(h.baseEnv(), "RAWDEVICE_PASSWORD="+token),
		dir:     h.work,
		isReady: stdoutReady,
	})
}

// startNode starts the Node SDK echo device (test/bench/node/echo-device.js).
func (h *harness) startNode(id string) (*proc, error) {
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, fmt.Errorf("device d needs node: %w (or give --skip-node)", err)
	}
	return startProc(procSpec{
		name: "node echo-device (" + id + ")",
		path: node,
		args: []string{filepath.Join(h.root, "test", "bench", "node", "echo-device.js")},
		env: append(h.baseEnv(), "NODE_PATH="+h.opts.nodeModules,
			"DEVICE_CONNECTION_STRING="+h.info.Devices[id], "DEVICE_CA_FILE="+h.info.CAFile),
		dir:     h.work,
		isReady: stdoutReady,
	})
}

// stdoutReady matches the line "ready" on stdout: the ready signal of the
// raw device and the Node device (their documented protocol, not a log
// line).
func stdoutReady(stream string, line []byte) bool {
	return stream == "stdout" && string(bytes.TrimSpace(line)) == "ready"
}

// baseEnv is the environment of every device: no credentials of the
// harness's own environment leak into it.
func (h *harness) baseEnv() []string {
	return []string{"PATH=" + os.Getenv("PATH"), "HOME=" + h.work, "LANG=C.UTF-8"}
}
