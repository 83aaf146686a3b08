package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/methodd/methodd/internal/localhub"
	"github.com/methodd/methodd/iothub"
)

// twinOpTimeout bounds one command of twin_device.js or twin_service.js.
// Neither SDK has a timeout of its own for twin calls (a request the hub
// never answers stays pending forever, fleet reference §1.6), so without it
// a scenario would only report its overall deadline, not the step that hung.
const twinOpTimeout = 30 * time.Second

// twinCmd is one stdin command of twin_device.js or twin_service.js.
type twinCmd struct {
	ID     string          `json:"id"`
	Op     string          `json:"op"`
	Device string          `json:"device,omitempty"`
	Module string          `json:"module,omitempty"`
	As     string          `json:"as,omitempty"`   // twin_service.js: keep the Twin under this name
	ETag   string          `json:"etag,omitempty"` // twin_service.js updateTwin
	Patch  json.RawMessage `json:"patch,omitempty"`
}

// twinLine is one stdout line of twin_device.js or twin_service.js: a
// command's result or an event. (event, the suite's common type, does not
// name these fields; it is re-parsed from event.Raw.)
type twinLine struct {
	Event      string          `json:"event"`
	ID         string          `json:"id"`
	Op         string          `json:"op"`
	OK         bool            `json:"ok"`
	Error      string          `json:"error"` // the SDK error's constructor name
	Message    string          `json:"message"`
	HTTPStatus *int            `json:"httpStatus"`
	Body       *string         `json:"body"`     // service: the raw HTTP body of an error
	Twin       json.RawMessage `json:"twin"`     // service: the SDK's Twin
	Device     json.RawMessage `json:"device"`   // service: the SDK's Device (create)
	Devices    []string        `json:"devices"`  // service: the device ids Registry.list returned
	Desired    json.RawMessage `json:"desired"`  // device getTwin: twin.properties.desired
	Reported   json.RawMessage `json:"reported"` // device getTwin: twin.properties.reported
	Raw        json.RawMessage `json:"raw"`      // device getTwin: the GET response body
	Patch      json.RawMessage `json:"patch"`    // device desired event
	FromHub    bool            `json:"fromHub"`  // device desired event: fired by a PATCH from the hub
	Topic      string          `json:"topic"`    // device subscribe event

	line string
}

func (l twinLine) String() string { return l.line }

func parseTwinLine(e event) (twinLine, bool) {
	var l twinLine
	if err := json.Unmarshal([]byte(e.Raw), &l); err != nil {
		return twinLine{}, false
	}
	l.line = e.Raw
	return l, true
}

// twinProc is a running twin_device.js or twin_service.js.
type twinProc struct {
	*node
	next atomic.Int64
}

// startTwinDevice runs twin_device.js with the identity's connection string
// and waits until its client is open.
func (h *hubEnv) startTwinDevice(ctx context.Context, t *testing.T, name, cs string) (*twinProc, error) {
	env := []string{"DEVICE_CONNECTION_STRING=" + cs, "DEVICE_CA_FILE=" + h.info.CAFile}
	n, err := startNode(ctx, t, "twin_device.js ("+name+")", env, "twin_device.js")
	if err != nil {
		return nil, err
	}
	return waitReady(ctx, n)
}

// startTwinService runs twin_service.js with the hub's service connection
// string and the redirect preload.
func (h *hubEnv) startTwinService(ctx context.Context, t *testing.T) (*twinProc, error) {
	env := []string{
		"SERVICE_CONNECTION_STRING=" + h.serviceCS,
		"NODE_EXTRA_CA_CERTS=" + h.info.CAFile,
		"METHODD_REDIRECT=" + h.redirect,
	}
	n, err := startNode(ctx, t, "twin_service.js", env, "-r", "./redirect.js", "twin_service.js")
	if err != nil {
		return nil, err
	}
	return waitReady(ctx, n)
}

func waitReady(ctx context.Context, n *node) (*twinProc, error) {
	ctx, cancel := context.WithTimeout(ctx, twinOpTimeout)
	defer cancel()
	if _, err := n.waitFor(ctx, "ready", isEvent("ready")); err != nil {
		return nil, err
	}
	return &twinProc{node: n}, nil
}

// do sends one command and returns its result line, whether ok or not.
func (p *twinProc) do(ctx context.Context, what string, c twinCmd) (twinLine, error) {
	c.ID = p.nextID()
	return p.send(ctx, what, c.ID, c)
}

// nextID is a fresh command id.
func (p *twinProc) nextID() string { return fmt.Sprintf("c%d", p.next.Add(1)) }

// send writes command c (whose id is id) as one JSON line and waits for its
// result line, whether ok or not.
func (p *twinProc) send(ctx context.Context, what, id string, c any) (twinLine, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return twinLine{}, err
	}
	if _, err := p.stdin.Write(append(b, '\n')); err != nil {
		return twinLine{}, fmt.Errorf("%s: send %s: %w", p.name, what, err)
	}
	ctx, cancel := context.WithTimeout(ctx, twinOpTimeout)
	defer cancel()
	ev, err := p.waitFor(ctx, "result of "+what, func(e event) bool {
		l, ok := parseTwinLine(e)
		return ok && l.Event == "result" && l.ID == id
	})
	if err != nil {
		return twinLine{}, err
	}
	l, _ := parseTwinLine(ev)
	return l, nil
}

// ok is do for a command that must succeed.
func (p *twinProc) ok(ctx context.Context, what string, c twinCmd) (twinLine, error) {
	l, err := p.do(ctx, what, c)
	if err != nil {
		return l, err
	}
	if !l.OK {
		return l, fmt.Errorf("%s failed: %s", what, l)
	}
	return l, nil
}

// report updates reported properties through the device SDK; it must succeed.
func (p *twinProc) report(ctx context.Context, patch string) error {
	_, err := p.ok(ctx, "reported update "+patch, twinCmd{Op: "report", Patch: json.RawMessage(patch)})
	return err
}

// nextDesiredFromHub waits for the device's next properties.desired event
// fired by a desired PATCH from the hub, counting from the start of the
// process; skip is how many such events came before.
func (p *twinProc) nextDesiredFromHub(ctx context.Context, skip int) (twinLine, error) {
	ctx, cancel := context.WithTimeout(ctx, twinOpTimeout)
	defer cancel()
	seen := 0
	ev, err := p.waitFor(ctx, "a desired-properties notification", func(e event) bool {
		l, ok := parseTwinLine(e)
		if !ok || l.Event != "desired" || !l.FromHub {
			return false
		}
		seen++
		return seen > skip
	})
	if err != nil {
		return twinLine{}, err
	}
	l, _ := parseTwinLine(ev)
	return l, nil
}

// desiredFromHub counts the hub's desired notifications the device got so far.
func (p *twinProc) desiredFromHub() int {
	return count(p.snapshot(), func(e event) bool {
		l, ok := parseTwinLine(e)
		return ok && l.Event == "desired" && l.FromHub
	})
}

// jsonAt returns the value at a dotted path of a JSON document ("" is the
// document) and whether it is there. Numbers are float64.
func jsonAt(doc json.RawMessage, path string) (any, bool) {
	var v any
	if err := json.Unmarshal(doc, &v); err != nil {
		return nil, false
	}
	if path == "" {
		return v, true
	}
	for k := range strings.SplitSeq(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[k]; !ok {
			return nil, false
		}
	}
	return v, true
}

// twinCheck collects the differences between JSON documents and what a
// scenario wants of them.
type twinCheck struct{ problems []string }

// equal wants the value at path to be want (compared as JSON).
func (c *twinCheck) equal(what string, doc json.RawMessage, path string, want any) {
	got, ok := jsonAt(doc, path)
	wb, _ := json.Marshal(want)
	var w any
	_ = json.Unmarshal(wb, &w)
	if !ok {
		c.problems = append(c.problems, fmt.Sprintf("%s: %s is missing, want %s; document: %s", what, path, wb, doc))
		return
	}
	if !reflect.DeepEqual(got, w) {
		gb, _ := json.Marshal(got)
		c.problems = append(c.problems, fmt.Sprintf("%s: %s is %s, want %s; document: %s", what, path, gb, wb, doc))
	}
}

// absent wants nothing at path.
func (c *twinCheck) absent(what string, doc json.RawMessage, path string) {
	if got, ok := jsonAt(doc, path); ok {
		gb, _ := json.Marshal(got)
		c.problems = append(c.problems, fmt.Sprintf("%s: %s is %s, want it absent; document: %s", what, path, gb, doc))
	}
}

// keys wants the object at path to have exactly these members.
func (c *twinCheck) keys(what string, doc json.RawMessage, path string, want ...string) {
	c.memberSet(what, doc, path, "", want)
}

// members is keys for the members other than "$metadata".
func (c *twinCheck) members(what string, doc json.RawMessage, path string, want ...string) {
	c.memberSet(what, doc, path, "$metadata", want)
}

func (c *twinCheck) memberSet(what string, doc json.RawMessage, path, ignore string, want []string) {
	got, _ := jsonAt(doc, path)
	m, ok := got.(map[string]any)
	if !ok {
		c.add("%s: %q is not an object; document: %s", what, path, doc)
		return
	}
	var have []string
	for k := range m {
		if k != ignore {
			have = append(have, k)
		}
	}
	if !sameSet(have, want) {
		c.add("%s: members %q, want exactly %q (ignoring %q); document: %s", what, have, want, ignore, doc)
	}
}

func (c *twinCheck) add(format string, args ...any) {
	c.problems = append(c.problems, fmt.Sprintf(format, args...))
}

func (c *twinCheck) err() error { return joinProblems(c.problems) }

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	in := map[string]bool{}
	for _, s := range a {
		in[s] = true
	}
	for _, s := range b {
		if !in[s] {
			return false
		}
	}
	return true
}

// wantSDKError checks a failed service command: the SDK's error class and
// the HTTP status.
func wantSDKError(what string, l twinLine, class string, httpStatus int) error {
	if l.OK {
		return fmt.Errorf("%s succeeded, want %s (HTTP %d): %s", what, class, httpStatus, l)
	}
	var problems []string
	if l.Error != class {
		problems = append(problems, fmt.Sprintf("SDK error %s, want %s", l.Error, class))
	}
	if l.HTTPStatus == nil || *l.HTTPStatus != httpStatus {
		problems = append(problems, fmt.Sprintf("HTTP status %s, want %d", intp(l.HTTPStatus), httpStatus))
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s: %s: %s", what, strings.Join(problems, "; "), l)
	}
	return nil
}

// restartableHub is a hub of one scenario's own that can be stopped and
// started again on the same state directory and the same ports, so that
// SDK clients find it where it was.
type restartableHub struct {
	*hubEnv
	dir string
	log *slog.Logger
}

// startRestartableHub starts a faithful hub on free loopback ports; the
// test's cleanup closes it (and every restarted one).
func startRestartableHub(ctx context.Context, t *testing.T) (*restartableHub, error) {
	r := &restartableHub{dir: t.TempDir(), log: testLogger(t)}
	hub, err := r.start(ctx, t, "127.0.0.1:0", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	info := hub.Info()
	cs, err := iothub.ParseServiceConnectionString(info.ServiceConnectionString)
	if err != nil {
		return nil, fmt.Errorf("hub's service connection string: %w", err)
	}
	host, _, err := net.SplitHostPort(cs.HostName)
	if err != nil {
		return nil, fmt.Errorf("hub's service HostName %q has no port: %w", cs.HostName, err)
	}
	cs.HostName = host
	r.hubEnv = &hubEnv{
		hub:       hub,
		info:      info,
		serviceCS: cs.String(),
		redirect:  host + ":443=" + info.HTTPSAddr,
		devices:   map[string]string{},
	}
	return r, nil
}

func (r *restartableHub) start(ctx context.Context, t *testing.T, mqttAddr, httpsAddr string) (*localhub.Hub, error) {
	hub, err := localhub.Start(ctx, localhub.Options{Dir: r.dir, MQTTAddr: mqttAddr, HTTPSAddr: httpsAddr, Logger: r.log})
	if err != nil {
		return nil, fmt.Errorf("start local hub on %s: %w", r.dir, err)
	}
	t.Cleanup(func() { hub.Close() })
	return hub, nil
}

// restart closes the hub (every client is disconnected) and starts a new
// one on the same state directory and addresses.
func (r *restartableHub) restart(ctx context.Context, t *testing.T) error {
	if err := r.hub.Close(); err != nil {
		return fmt.Errorf("stop the hub: %w", err)
	}
	hub, err := r.start(ctx, t, r.info.MQTTAddr, r.info.HTTPSAddr)
	if err != nil {
		return fmt.Errorf("restart: %w", err)
	}
	r.mu.Lock()
	r.hub = hub
	r.mu.Unlock()
	if got := hub.Info(); got.ServiceConnectionString != r.info.ServiceConnectionString {
		return fmt.Errorf("the restarted hub has another service connection string: %q, was %q", got.ServiceConnectionString, r.info.ServiceConnectionString)
	}
	return nil
}

// listeningTwinPair starts an SDK device for id that listens for desired
// changes, and an SDK service that has read id's twin as "A".
func (h *hubEnv) listeningTwinPair(ctx context.Context, t *testing.T, id string) (d, s *twinProc, err error) {
	if d, _, err = h.readyTwinDevice(ctx, t, id, ""); err != nil {
		return nil, nil, err
	}
	if _, err := d.ok(ctx, "twin.on('properties.desired')", twinCmd{Op: "listen"}); err != nil {
		return nil, nil, err
	}
	if s, err = h.startTwinService(ctx, t); err != nil {
		return nil, nil, err
	}
	if _, err := s.ok(ctx, "Registry.getTwin", twinCmd{Op: "getTwin", Device: id, As: "A"}); err != nil {
		return nil, nil, err
	}
	return d, s, nil
}
