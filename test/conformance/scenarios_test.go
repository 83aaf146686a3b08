package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// A scenario drives SDK processes against a hub and returns nil only if
// every expectation held. Scenarios never call t.Fatal: the fault tests run
// them against a deliberately broken hub and assert that they fail.
type scenario struct {
	name    string
	timeout time.Duration
	run     func(ctx context.Context, t *testing.T, h *hubEnv) error
}

// sdkScenarios: SDK device ↔ local hub ↔ SDK service (issue 7).
var sdkScenarios = []scenario{
	{"json_round_trip", 30 * time.Second, jsonRoundTrip},
	{"null_payload", 30 * time.Second, nullPayload},
	{"device_status_500", 30 * time.Second, deviceStatus500},
	{"concurrent_calls", 30 * time.Second, concurrentCalls},
	{"response_timeout_504101", 30 * time.Second, responseTimeout},
	{"device_offline_404103", 30 * time.Second, deviceOffline},
	{"unknown_device_404001", 30 * time.Second, unknownDevice},
	{"wrong_device_key_refused", 30 * time.Second, wrongDeviceKey},
	{"wrong_service_key_401", 30 * time.Second, wrongServiceKey},
	{"module_identity", 30 * time.Second, moduleIdentity},
	{"connect_timeout_late_device", 45 * time.Second, connectTimeoutLateDevice},
	{"sas_renewal_60s", 120 * time.Second, sasRenewal},
	{"service_hostname_with_port", 30 * time.Second, serviceHostNameWithPort},
	{"device_id_punctuation", 30 * time.Second, deviceIDPunctuation},
	// The Node SDK escapes "(1)*!'" in its SAS sr, '*' with a lowercase %2a
	// (protocol §9); the hub must verify over sr exactly as sent.
	{"device_id_strict_encoding", 30 * time.Second, deviceIDStrictEncoding},
}

// roundTripPayloads are sent as the service SDK would serialise them
// (JSON.stringify: compact, keys in insertion order, non-ASCII raw, control
// characters as \u00XX). Keys are deliberately not sorted and the text holds
// <, > and &, so a hub that re-encodes instead of forwarding bytes shows up.
var roundTripPayloads = []string{
	`{"zeta":"Zoë ☃ 日本語 🚀 <tag> & \"quoted\" back\\slash\n\ttab \u0001","alpha":{"nested":{"deeper":[{"k":"v"},[],{}]},"n":[1,-2.5,1e+21,0,true,false,null]},"empty":"","arr":[[1,[2,[3]]],"x"]}`,
	`[1,"two",{"three":[3]},null,false]`,
	`"just a string with ünïcödé"`,
	`12345.678`,
}

func jsonRoundTrip(ctx context.Context, t *testing.T, h *hubEnv) error {
	d, err := h.readyDevice(ctx, t, "rt-json", "", deviceOptions{})
	if err != nil {
		return err
	}
	calls := make([]call, len(roundTripPayloads))
	for i, p := range roundTripPayloads {
		calls[i] = call{Device: "rt-json", MethodName: "echo", Payload: json.RawMessage(p)}
	}
	results, err := h.invoke(ctx, t, "", calls...)
	if err != nil {
		return err
	}
	var problems []string
	for i, p := range roundTripPayloads {
		r := results[i]
		if err := wantResult(r, 200, p); err != nil {
			problems = append(problems, fmt.Sprintf("payload %d: service: %v", i, err))
		}
		raw, err := d.waitFor(ctx, "request bytes", func(e event) bool { return e.Event == "raw" && e.Body != nil && *e.Body == p })
		if err != nil {
			problems = append(problems, fmt.Sprintf("payload %d: the device never received the exact bytes %s: %v", i, p, err))
			continue
		}
		seen, err := d.waitFor(ctx, "handler call", func(e event) bool { return e.Event == "method" && e.RID == raw.RID })
		if err != nil {
			problems = append(problems, fmt.Sprintf("payload %d: %v", i, err))
		} else if seen.Payload == nil || *seen.Payload != p {
			problems = append(problems, fmt.Sprintf("payload %d: device handler saw %s, want %s", i, strp(seen.Payload), p))
		}
	}
	return joinProblems(problems)
}

func nullPayload(ctx context.Context, t *testing.T, h *hubEnv) error {
	d, err := h.readyDevice(ctx, t, "rt-null", "", deviceOptions{})
	if err != nil {
		return err
	}
	r, err := h.invokeOne(ctx, t, call{Device: "rt-null", MethodName: "echo"}) // the SDK sends "payload":null
	if err != nil {
		return err
	}
	var problems []string
	if err := wantResult(r, 200, "null"); err != nil {
		problems = append(problems, "service: "+err.Error())
	}
	raw, err := d.waitFor(ctx, "request bytes", isEvent("raw"))
	if err != nil {
		return err
	}
	if raw.Body == nil || *raw.Body != "null" {
		// The SDK answers such a request itself (400) and never calls the handler.
		problems = append(problems, fmt.Sprintf("device received body %q, want the 4 bytes null", strp(raw.Body)))
		return joinProblems(problems)
	}
	if seen, err := d.waitFor(ctx, "handler call", isEvent("method")); err != nil {
		problems = append(problems, "device handler: "+err.Error())
	} else if seen.Payload == nil || *seen.Payload != "null" {
		problems = append(problems, fmt.Sprintf("device handler saw payload %s, want null", strp(seen.Payload)))
	}
	return joinProblems(problems)
}

func deviceStatus500(ctx context.Context, t *testing.T, h *hubEnv) error {
	if _, err := h.readyDevice(ctx, t, "rt-500", "", deviceOptions{}); err != nil {
		return err
	}
	r, err := h.invokeOne(ctx, t, call{Device: "rt-500", MethodName: "fail500", Payload: json.RawMessage(`{}`)})
	if err != nil {
		return err
	}
	return wantResult(r, 500, `{"error":"boom"}`)
}

func concurrentCalls(ctx context.Context, t *testing.T, h *hubEnv) error {
	if _, err := h.readyDevice(ctx, t, "rt-conc", "", deviceOptions{}); err != nil {
		return err
	}
	// The first call is answered after the second: replies must be matched
	// by $rid, not by order.
	a := `{"seconds":2,"tag":"A"}`
	b := `{"seconds":0.2,"tag":"B"}`
	rs, err := h.invoke(ctx, t, "",
		call{Device: "rt-conc", MethodName: "slow", Payload: json.RawMessage(a)},
		call{Device: "rt-conc", MethodName: "slow", Payload: json.RawMessage(b)})
	if err != nil {
		return err
	}
	var problems []string
	if err := wantResult(rs[0], 200, a); err != nil {
		problems = append(problems, "call A: "+err.Error())
	}
	if err := wantResult(rs[1], 200, b); err != nil {
		problems = append(problems, "call B: "+err.Error())
	}
	if len(problems) == 0 && rs[1].MS >= rs[0].MS {
		problems = append(problems, fmt.Sprintf("call B took %d ms, A %d ms: they did not run concurrently", rs[1].MS, rs[0].MS))
	}
	return joinProblems(problems)
}

// responseTimeout: the device answers 1 s after the hub's 5 s response
// timeout. The caller gets 504101 at 5 s; the late reply must be dropped
// harmlessly: the device stays connected and the next call works.
func responseTimeout(ctx context.Context, t *testing.T, h *hubEnv) error {
	d, err := h.readyDevice(ctx, t, "rt-timeout", "", deviceOptions{})
	if err != nil {
		return err
	}
	r, err := h.invokeOne(ctx, t, call{Device: "rt-timeout", MethodName: "slow", Payload: json.RawMessage(`{"seconds":6}`), ResponseTimeoutInSeconds: 5})
	if err != nil {
		return err
	}
	if err := wantError(r, "GatewayTimeoutError", 504, 504101); err != nil {
		return err
	}
	if r.MS < 4500 || r.MS > 9000 {
		return fmt.Errorf("504101 came after %d ms, want about 5000 (responseTimeoutInSeconds 5)", r.MS)
	}
	if _, err := d.waitFor(ctx, "the late reply", func(e event) bool { return e.Event == "replied" && e.Method == "slow" }); err != nil {
		return err
	}
	p := `{"after":"late reply"}`
	r, err = h.invokeOne(ctx, t, call{Device: "rt-timeout", MethodName: "echo", Payload: json.RawMessage(p)})
	if err != nil {
		return err
	}
	if err := wantResult(r, 200, p); err != nil {
		return fmt.Errorf("call after a late reply: %w", err)
	}
	return nil
}

func deviceOffline(ctx context.Context, t *testing.T, h *hubEnv) error {
	if _, err := h.device("rt-offline", ""); err != nil {
		return err
	}
	r, err := h.invokeOne(ctx, t, call{Device: "rt-offline", MethodName: "echo", Payload: json.RawMessage(`{}`)})
	if err != nil {
		return err
	}
	return wantError(r, "", 404, 404103)
}

func unknownDevice(ctx context.Context, t *testing.T, h *hubEnv) error {
	r, err := h.invokeOne(ctx, t, call{Device: "no-such-device", MethodName: "echo", Payload: json.RawMessage(`{}`)})
	if err != nil {
		return err
	}
	return wantError(r, "", 404, 404001)
}

func wrongDeviceKey(ctx context.Context, t *testing.T, h *hubEnv) error {
	cs, err := h.device("rt-badkey", "")
	if err != nil {
		return err
	}
	bad, err := withKey(cs, "wrongwrongwrongwrongwrongwrongwrongwrongwro=")
	if err != nil {
		return err
	}
	d, err := h.startDevice(ctx, t, "rt-badkey (wrong key)", bad, deviceOptions{})
	if err != nil {
		return err
	}
	ev, err := d.waitFor(ctx, "open failure", func(e event) bool { return e.Event == "ready" || (e.Event == "error" && e.Where == "main") })
	if err != nil {
		return err
	}
	if ev.Event == "ready" {
		return fmt.Errorf("device with a wrong key connected and subscribed; want CONNACK refused")
	}
	// The SDK maps CONNACK 5 "Not authorized" to UnauthorizedError.
	if ev.Name != "UnauthorizedError" && !strings.Contains(strings.ToLower(ev.Message), "not authorized") {
		return fmt.Errorf("open failed with %s %q, want UnauthorizedError (CONNACK not authorized)", ev.Name, ev.Message)
	}
	return nil
}

func wrongServiceKey(ctx context.Context, t *testing.T, h *hubEnv) error {
	bad, err := withKey(h.serviceCS, "wrongwrongwrongwrongwrongwrongwrongwrongwro=")
	if err != nil {
		return err
	}
	rs, err := h.invoke(ctx, t, bad, call{Device: "rt-offline", MethodName: "echo"})
	if err != nil {
		return err
	}
	return wantError(rs[0], "UnauthorizedError", 401, 401002)
}

func moduleIdentity(ctx context.Context, t *testing.T, h *hubEnv) error {
	d, err := h.readyDevice(ctx, t, "rt-mod", "mod-a", deviceOptions{})
	if err != nil {
		return err
	}
	p := `{"module":"mod-a"}`
	r, err := h.invokeOne(ctx, t, call{Device: "rt-mod", Module: "mod-a", MethodName: "echo", Payload: json.RawMessage(p)})
	if err != nil {
		return err
	}
	if err := wantResult(r, 200, p); err != nil {
		return fmt.Errorf("module route: %w", err)
	}
	if _, err := d.waitFor(ctx, "request on the module", func(e event) bool { return e.Event == "method" && e.Payload != nil && *e.Payload == p }); err != nil {
		return err
	}
	return nil
}

// connectTimeoutLateDevice calls a registered but offline device with
// connectTimeoutInSeconds 20, and starts the device only once the request is
// on its way (plus a deliberate lateness): the hub must hold the call until
// the device has subscribed, then deliver it.
func connectTimeoutLateDevice(ctx context.Context, t *testing.T, h *hubEnv) error {
	const late = 1500 * time.Millisecond
	cs, err := h.device("rt-late", "")
	if err != nil {
		return err
	}
	p := `{"late":true}`
	s, err := h.startService(ctx, t, serviceSpec{Calls: []call{{Device: "rt-late", MethodName: "echo", Payload: json.RawMessage(p), ConnectTimeoutInSeconds: 20}}}, "")
	if err != nil {
		return err
	}
	if _, err := s.waitFor(ctx, "connection to the hub", isEvent("connected")); err != nil {
		return err
	}
	select { // the scenario's lateness, not synchronisation: the device starts after the call
	case <-time.After(late):
	case <-ctx.Done():
		return ctx.Err()
	}
	if _, err := h.startDevice(ctx, t, "rt-late", cs, deviceOptions{}); err != nil {
		return err
	}
	r, err := s.waitFor(ctx, "call result", func(e event) bool { return e.I != nil })
	if err != nil {
		return err
	}
	if err := wantResult(r, 200, p); err != nil {
		return err
	}
	if time.Duration(r.MS)*time.Millisecond < late {
		return fmt.Errorf("call returned after %d ms, before the device was started (%v)", r.MS, late)
	}
	return nil
}

// serviceHostNameWithPort uses the hub's service connection string as
// written in hub.json (HostName=localhost:PORT): the SDK then signs the
// audience "localhost:PORT", which the hub must accept as its own name.
func serviceHostNameWithPort(ctx context.Context, t *testing.T, h *hubEnv) error {
	if _, err := h.readyDevice(ctx, t, "rt-port", "", deviceOptions{}); err != nil {
		return err
	}
	p := `{"port":true}`
	rs, err := h.invoke(ctx, t, h.info.ServiceConnectionString, call{Device: "rt-port", MethodName: "echo", Payload: json.RawMessage(p)})
	if err != nil {
		return err
	}
	return wantResult(rs[0], 200, p)
}

// deviceIDPunctuation uses every punctuation character the local hub
// registers. The SDK escapes ':' and '@' in its SAS sr (%3A, %40), in the
// MQTT username it does not, and the service SDK's REST path has them
// percent-encoded: the hub must verify and route all three forms.
func deviceIDPunctuation(ctx context.Context, t *testing.T, h *hubEnv) error {
	const id = "gw.site:1@x_y-z"
	if _, err := h.readyDevice(ctx, t, id, "", deviceOptions{}); err != nil {
		return err
	}
	p := `{"id":"punctuation"}`
	r, err := h.invokeOne(ctx, t, call{Device: id, MethodName: "echo", Payload: json.RawMessage(p)})
	if err != nil {
		return err
	}
	return wantResult(r, 200, p)
}

// deviceIDStrictEncoding uses a device ID with characters the Node SDK
// escapes in its SAS sr but encodeURIComponent leaves alone in the REST path
// ( ) * ! ' — protocol §9: the hub must verify the token over sr as sent.
func deviceIDStrictEncoding(ctx context.Context, t *testing.T, h *hubEnv) error {
	const id = "dev-(1)*!'"
	if _, err := h.readyDevice(ctx, t, id, "", deviceOptions{}); err != nil {
		return err
	}
	p := `{"id":"strict"}`
	r, err := h.invokeOne(ctx, t, call{Device: id, MethodName: "echo", Payload: json.RawMessage(p)})
	if err != nil {
		return err
	}
	return wantResult(r, 200, p)
}

// sasRenewal makes the SDK renew its SAS every 10 s with its own
// tokenRenewal option (token valid 20 s, renewed 10 s before expiry). Each
// renewal is a DISCONNECT + CONNECT with clean session 0 and no new
// SUBSCRIBE, so calls keep working only if the hub keeps the persistent
// session's subscription. Calls every 2 s for 60 s must all succeed, across
// at least 4 renewals.
func sasRenewal(ctx context.Context, t *testing.T, h *hubEnv) error {
	const period = 60 * time.Second
	d, err := h.readyDevice(ctx, t, "rt-renew", "", deviceOptions{tokenRenewal: "20:10"})
	if err != nil {
		return err
	}
	s, err := h.startService(ctx, t, serviceSpec{
		// connectTimeoutInSeconds 5: a call that lands in the ~30 ms between the
		// SDK's DISCONNECT and its new CONNECT waits for the device instead of
		// failing 404103, as a careful caller of the real hub would arrange.
		// With a hub that forgets the subscription it still fails, 5 s later.
		Calls:         []call{{Device: "rt-renew", MethodName: "counts", Payload: json.RawMessage(`{}`), ResponseTimeoutInSeconds: 5, ConnectTimeoutInSeconds: 5}},
		EveryMS:       2000,
		ForMS:         int(period / time.Millisecond),
		StopOnFailure: true,
	}, "")
	if err != nil {
		return err
	}
	done, err := s.waitFor(ctx, "end of the 60 s run", func(e event) bool { return e.Done })
	if err != nil {
		return err
	}
	var okCalls int
	var failures []string
	for _, ev := range s.snapshot() {
		if ev.I == nil {
			continue
		}
		if ev.OK && ev.Status != nil && *ev.Status == 200 {
			okCalls++
		} else {
			failures = append(failures, ev.Raw)
		}
	}
	renewals := count(d.snapshot(), isEvent("reconnected"))
	tokens := count(d.snapshot(), isEvent("token"))
	t.Logf("SAS renewal: %d successful calls, %d failed, %d new tokens, %d renewal reconnects", okCalls, done.Failed, tokens, renewals)
	if len(failures) > 0 {
		return fmt.Errorf("%d call(s) failed during SAS renewals (after %d renewal reconnects), first: %s", len(failures), renewals, failures[0])
	}
	if renewals < 4 {
		return fmt.Errorf("the SDK reconnected for a new SAS %d times in %v, want at least 4", renewals, period)
	}
	if okCalls < 20 {
		return fmt.Errorf("only %d calls in %v, want at least 20", okCalls, period)
	}
	return nil
}

// wantResult checks a successful call: HTTP 200 and the device's status and
// payload (JSON.stringify of what the service SDK parsed).
func wantResult(r event, status int, payload string) error {
	if !r.OK {
		return fmt.Errorf("call failed: %s", r.Raw)
	}
	if r.HTTPStatus == nil || *r.HTTPStatus != 200 {
		return fmt.Errorf("HTTP status %s, want 200: %s", intp(r.HTTPStatus), r.Raw)
	}
	if r.Status == nil || *r.Status != status {
		return fmt.Errorf("device status %s, want %d: %s", intp(r.Status), status, r.Raw)
	}
	if r.Payload == nil || *r.Payload != payload {
		return fmt.Errorf("payload %s, want %s: %s", strp(r.Payload), payload, r.Raw)
	}
	return nil
}

// wantError checks a failed call: the SDK error class (if not empty), the
// HTTP status and the errorCode in the hub's nested error body.
func wantError(r event, class string, httpStatus, code int) error {
	if r.OK {
		return fmt.Errorf("call succeeded, want HTTP %d errorCode %d: %s", httpStatus, code, r.Raw)
	}
	var problems []string
	if class != "" && r.Error != class {
		problems = append(problems, fmt.Sprintf("SDK error %s, want %s", r.Error, class))
	}
	if r.HTTPStatus == nil || *r.HTTPStatus != httpStatus {
		problems = append(problems, fmt.Sprintf("HTTP status %s, want %d", intp(r.HTTPStatus), httpStatus))
	}
	if r.ErrorCode == nil || *r.ErrorCode != code {
		problems = append(problems, fmt.Sprintf("errorCode %s, want %d", intp(r.ErrorCode), code))
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s: %s", strings.Join(problems, "; "), r.Raw)
	}
	return nil
}

// withKey returns the connection string with another SharedAccessKey.
func withKey(cs, key string) (string, error) {
	parts := strings.Split(cs, ";")
	found := false
	for i, p := range parts {
		if strings.HasPrefix(p, "SharedAccessKey=") {
			parts[i] = "SharedAccessKey=" + key
			found = true
		}
	}
	if !found {
		return "", fmt.Errorf("connection string has no SharedAccessKey")
	}
	return strings.Join(parts, ";"), nil
}

func count(evs []event, match func(event) bool) int {
	n := 0
	for _, e := range evs {
		if match(e) {
			n++
		}
	}
	return n
}

func joinProblems(p []string) error {
	if len(p) == 0 {
		return nil
	}
	return fmt.Errorf("%s", strings.Join(p, "\n"))
}

func strp(s *string) string {
	if s == nil {
		return "<none>"
	}
	return *s
}

func intp(i *int) string {
	if i == nil {
		return "<none>"
	}
	return fmt.Sprint(*i)
}
