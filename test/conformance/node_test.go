package conformance

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/methodd/methodd/internal/testkit"
)

// event is one JSON line printed by device.js or service.js. Only the fields
// a scenario looks at are named; Raw keeps the whole line for messages.
type event struct {
	Event   string  `json:"event"`
	Method  string  `json:"method"`
	RID     string  `json:"rid"`
	Body    *string `json:"body"`    // device raw: request bytes as received; service error: HTTP body
	Payload *string `json:"payload"` // method: JSON.stringify of what the handler saw; call: of result.payload
	Status  *int    `json:"status"`
	Message string  `json:"message"`
	Where   string  `json:"where"`
	Name    string  `json:"name"`

	// service.js call results
	I           *int    `json:"i"`
	OK          bool    `json:"ok"`
	MS          int     `json:"ms"`
	HTTPStatus  *int    `json:"httpStatus"`
	ContentType *string `json:"contentType"`
	Result      *string `json:"result"`
	Error       string  `json:"error"`
	ErrorCode   *int    `json:"errorCode"`
	ErrorName   *string `json:"errorName"`
	Done        bool    `json:"done"`
	Failed      int     `json:"failed"`
	Fatal       string  `json:"fatal"`

	Raw string `json:"-"`
}

func (e event) String() string { return e.Raw }

// node is one running Node script whose stdout is a stream of events.
type node struct {
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *testkit.SyncBuffer
	exited chan struct{} // closed once the process has exited and stdout is drained
	err    error         // exit error, valid after exited is closed

	mu      sync.Mutex
	events  []event
	changed chan struct{} // closed and replaced on every new event
}

// nodeDir is the folder holding package.json, node_modules and the scripts.
func nodeDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// requireNodeModules fails (never skips) when the SDKs are not installed:
// the suite is part of the project's test command.
func requireNodeModules(t *testing.T) {
	t.Helper()
	for _, pkg := range []string{"azure-iot-device", "azure-iot-device-mqtt", "azure-iothub"} {
		if _, err := os.Stat(filepath.Join(nodeDir(t), "node_modules", pkg, "package.json")); err != nil {
			t.Fatalf("test/conformance/node_modules/%s is missing: run `npm ci --prefix test/conformance` (scripts/test.sh does)", pkg)
		}
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("node is not on PATH (Node 20+ is needed for the conformance suite): %v", err)
	}
}

// startNode runs `node ARGS...` in the conformance folder with extra
// environment ENV. The process ends when ctx ends or stop is called; the test's
// cleanup stops it in any case.
func startNode(ctx context.Context, t *testing.T, name string, env []string, args ...string) (*node, error) {
	cmd := exec.CommandContext(ctx, "node", args...)
	cmd.Dir = nodeDir(t)
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 5 * time.Second
	n := &node{name: name, cmd: cmd, stderr: &testkit.SyncBuffer{}, exited: make(chan struct{}), changed: make(chan struct{})}
	cmd.Stderr = n.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if n.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go n.read(stdout)
	t.Cleanup(n.stop)
	return n, nil
}

func (n *node) read(stdout io.Reader) {
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		var ev event
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			ev = event{Event: "unparsed"}
		}
		ev.Raw = line
		n.mu.Lock()
		n.events = append(n.events, ev)
		close(n.changed)
		n.changed = make(chan struct{})
		n.mu.Unlock()
	}
	n.err = n.cmd.Wait()
	close(n.exited)
}

// stop closes stdin (device.js then closes its client and exits) and waits a
// bounded time; the context kill and WaitDelay bound the rest.
func (n *node) stop() {
	n.stdin.Close()
	select {
	case <-n.exited:
	case <-time.After(5 * time.Second):
		_ = n.cmd.Process.Kill()
		<-n.exited
	}
}

// snapshot returns the events so far.
func (n *node) snapshot() []event {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]event(nil), n.events...)
}

// waitFor returns the first event (in order of arrival, from the start) that
// matches, waiting until one arrives, the process exits or ctx ends.
func (n *node) waitFor(ctx context.Context, what string, match func(event) bool) (event, error) {
	seen := 0
	for {
		n.mu.Lock()
		evs, changed := n.events[seen:], n.changed
		n.mu.Unlock()
		for _, ev := range evs {
			if match(ev) {
				return ev, nil
			}
		}
		seen += len(evs)
		select {
		case <-changed:
		case <-n.exited:
			// Drain anything printed just before exit.
			n.mu.Lock()
			rest := n.events[seen:]
			n.mu.Unlock()
			for _, ev := range rest {
				if match(ev) {
					return ev, nil
				}
			}
			return event{}, fmt.Errorf("%s exited (%w) before %s; %s", n.name, n.err, what, n.tail())
		case <-ctx.Done():
			return event{}, fmt.Errorf("%s: no %s before the deadline (%w); %s", n.name, what, ctx.Err(), n.tail())
		}
	}
}

// tail describes the last output for error messages.
func (n *node) tail() string {
	evs := n.snapshot()
	if len(evs) > 8 {
		evs = evs[len(evs)-8:]
	}
	var b strings.Builder
	fmt.Fprintf(&b, "last stdout of %s:", n.name)
	for _, ev := range evs {
		b.WriteString("\n  " + ev.Raw)
	}
	if s := strings.TrimSpace(n.stderr.String()); s != "" {
		if len(s) > 2000 {
			s = "…" + s[len(s)-2000:]
		}
		b.WriteString("\n  stderr: " + s)
	}
	return b.String()
}
