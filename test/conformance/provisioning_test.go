package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/methodd/methodd/internal/localhub"
)

// Identities of the provisioning hub (provisioningHubOptions). Each scenario
// uses its own.
const (
	provGroup      = "prov-group"      // symmetric-key enrollment group
	provX509Group  = "prov-x509-group" // X.509 CA enrollment group (the hub's CA)
	provIndividual = "prov-individual" // individual enrollment, registered by individual_enrollment
	provBadKey     = "prov-badkey"     // individual enrollment the SDK presents a wrong key for
	x509Device     = "x509-dev"        // CA-signed X.509 device, connected with its issued certificate
	x509Victim     = "x509-victim"     // CA-signed X.509 device, only impersonated with foreign certificates
)

func provisioningHubOptions() localhub.Options {
	return localhub.Options{
		DPSAddr:              "127.0.0.1:0",
		DPSWSAddr:            "127.0.0.1:0",
		EnrollmentGroups:     []string{provGroup},
		X509EnrollmentGroups: []string{provX509Group},
		Enrollments:          []string{provIndividual, provBadKey},
		X509Devices:          []string{x509Device, x509Victim},
	}
}

// provisioningScenarios: the SDK's provisioning client against the hub's DPS
// endpoint, and SDK devices authenticating with X.509 certificates (issue 16).
// Each uses identities of its own, so they run in parallel on one hub.
var provisioningScenarios = []scenario{
	{"group_enrollment", 30 * time.Second, groupEnrollment},
	{"group_enrollment_websocket", 30 * time.Second, groupEnrollmentWebSocket},
	{"individual_enrollment", 30 * time.Second, individualEnrollment},
	// The SDK times a DPS request out after 30 s; the 401 must come well
	// before, so the scenario's own deadline is shorter.
	{"wrong_key_refused", 20 * time.Second, wrongProvisioningKey},
	{"x509_device", 30 * time.Second, x509CASignedDevice},
	{"x509_wrong_certificate_refused", 30 * time.Second, x509WrongCertificate},
	{"x509_self_signed_thumbprint", 45 * time.Second, x509SelfSignedThumbprint},
	{"x509_group_enrollment", 30 * time.Second, x509GroupEnrollment},
	{"x509_registration_refused", 20 * time.Second, x509RegistrationRefused},
}

// TestSDKProvisioning runs the provisioning and X.509 scenarios against one
// faithful hub with a DPS endpoint, enrollments and X.509 devices.
func TestSDKProvisioning(t *testing.T) {
	requireNodeModules(t)
	requireProvisioningModules(t)
	t.Parallel()
	h := startHubWith(t, provisioningHubOptions())
	for _, sc := range provisioningScenarios {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			runScenario(t, sc, h)
		})
	}
	// On a hub of its own: its DPSThrottle counter is hub-wide.
	t.Run("throttled_429_retried", func(t *testing.T) {
		t.Parallel()
		opts := provisioningHubOptions()
		opts.Faults.DPSThrottle = 2
		th := startHubWith(t, opts)
		runScenario(t, scenario{"throttled_429_retried", 30 * time.Second, throttledRegistration}, th)
	})
}

// throttledRegistration: the hub answers the first two DPS requests 429
// with retry-after=1. The SDK treats a status of 429 or more as "keep
// going" and re-sends its register after retry-after (§5.5), so the
// individual enrollment is still assigned and the device answers a method.
func throttledRegistration(ctx context.Context, t *testing.T, h *hubEnv) error {
	if h.info.DPS == nil {
		return fmt.Errorf("the hub's Info has no DPS member")
	}
	key, ok := h.info.DPS.Enrollments[provIndividual]
	if !ok {
		return fmt.Errorf("Info.DPS.Enrollments has no %q: %v", provIndividual, h.info.DPS.Enrollments)
	}
	return provisionAndCall(ctx, t, h, provIndividual, provSpec{key: key}, 2)
}

// requireProvisioningModules fails (never skips) when the provisioning SDK
// packages are not installed.
func requireProvisioningModules(t *testing.T) {
	t.Helper()
	for _, pkg := range []string{"azure-iot-provisioning-device", "azure-iot-provisioning-device-mqtt", "azure-iot-security-symmetric-key", "azure-iot-security-x509"} {
		requireNodeModule(t, pkg)
	}
}

func requireNodeModule(t *testing.T, pkg string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(nodeDir(t), "node_modules", pkg, "package.json")); err != nil {
		t.Fatalf("test/conformance/node_modules/%s is missing: run `npm ci --prefix test/conformance` (scripts/test.sh does)", pkg)
	}
}

// assigned checks a registration result: assigned to the local hub, with
// the registration id as device id (what DPS does for symmetric-key
// enrollments without a device id of their own).
func assigned(l provLine, regID string) error {
	if l.Event != "registered" {
		return fmt.Errorf("registration of %s failed: %s", regID, l)
	}
	var problems []string
	if l.RegistrationStatus != "assigned" {
		problems = append(problems, fmt.Sprintf("status %q, want assigned", l.RegistrationStatus))
	}
	if l.DeviceID != regID {
		problems = append(problems, fmt.Sprintf("deviceId %q, want the registration id %q", l.DeviceID, regID))
	}
	if l.RegistrationID != regID {
		problems = append(problems, fmt.Sprintf("registrationId %q, want %q", l.RegistrationID, regID))
	}
	if l.AssignedHub != localhub.HostName {
		problems = append(problems, fmt.Sprintf("assignedHub %q, want the hub's HostName %q", l.AssignedHub, localhub.HostName))
	}
	if len(problems) > 0 {
		return fmt.Errorf("registration of %s: %s: %s", regID, strings.Join(problems, "; "), l)
	}
	return nil
}

// provisionAndCall registers regID through the SDK, checks the assignment
// and the DPS responses (throttled: how many 429s the hub's DPSThrottle
// fault sends first), lets provision.js connect to the assigned hub with the
// same key or certificate and calls its echo method through the service SDK.
//
// checks, if any, judge the registration line further (e.g. the X.509
// enrollment group it names).
func provisionAndCall(ctx context.Context, t *testing.T, h *hubEnv, regID string, s provSpec, throttled int, checks ...func(provLine) error) error {
	s.becomeDevice = true
	p, err := h.startProvision(ctx, t, regID, s)
	if err != nil {
		return err
	}
	l, err := registration(ctx, p)
	if err != nil {
		return err
	}
	if err := assigned(l, regID); err != nil {
		return err
	}
	for _, check := range checks {
		if err := check(l); err != nil {
			return err
		}
	}
	rs, err := dpsResponses(p)
	if err != nil {
		return err
	}
	if err := checkDPSFlow(rs, throttled); err != nil {
		return fmt.Errorf("DPS responses for %s: %w", regID, err)
	}
	ev, err := p.waitFor(ctx, "the provisioned device's ready", func(e event) bool {
		return e.Event == "ready" || (e.Event == "error" && e.Where == "device")
	})
	if err != nil {
		return err
	}
	if ev.Event != "ready" {
		return fmt.Errorf("the provisioned device %s could not connect to the assigned hub with its credentials: %s", regID, ev)
	}
	payload := fmt.Sprintf(`{"provisioned":%q}`, regID)
	r, err := h.invokeOne(ctx, t, call{Device: regID, MethodName: "echo", Payload: json.RawMessage(payload)})
	if err != nil {
		return err
	}
	if err := wantResult(r, 200, payload); err != nil {
		return fmt.Errorf("echo on the provisioned device %s: %w", regID, err)
	}
	return nil
}

// checkDPSFlow checks the responses of one successful registration
// (protocol §5.4, §8 item 9): `throttled` 429s with retry-after (the SDK
// then re-sends the register), the register's 202 with retry-after, any
// number of 202 polls with retry-after, and a final 200 without it.
func checkDPSFlow(rs []dpsResponse, throttled int) error {
	describe := func() string {
		var b strings.Builder
		for _, r := range rs {
			fmt.Fprintf(&b, "\n  %d retry-after=%v %s", r.status, r.retryAfter, r.body)
		}
		return b.String()
	}
	if len(rs) < throttled+2 {
		return fmt.Errorf("%d responses, want %d 429s, a 202 and a 200:%s", len(rs), throttled, describe())
	}
	for i, r := range rs {
		var want int
		switch {
		case i < throttled:
			want = 429
		case i == len(rs)-1:
			want = 200
		default:
			want = 202
		}
		if r.status != want {
			return fmt.Errorf("response %d has status %d, want %d:%s", i, r.status, want, describe())
		}
		if (want == 200) != (r.retryAfter == 0) {
			return fmt.Errorf("response %d (%d) has retry-after %v; want it on 429 and 202 only:%s", i, r.status, r.retryAfter, describe())
		}
	}
	return nil
}

// groupEnrollment: a device of the enrollment group registers with the key
// derived from the group key (register_symkeygroup.js), is created in the
// hub's registry with that key and answers a method call.
func groupEnrollment(ctx context.Context, t *testing.T, h *hubEnv) error {
	if h.info.DPS == nil {
		return fmt.Errorf("the hub's Info has no DPS member")
	}
	groupKey, ok := h.info.DPS.Groups[provGroup]
	if !ok {
		return fmt.Errorf("Info.DPS.Groups has no %q: %v", provGroup, h.info.DPS.Groups)
	}
	return provisionAndCall(ctx, t, h, "prov-group-dev-1", provSpec{groupKey: groupKey}, 0)
}

// groupEnrollmentWebSocket: group_enrollment with the SDK's MqttWs
// provisioning transport (MQTT over WSS at /$iothub/websocket).
func groupEnrollmentWebSocket(ctx context.Context, t *testing.T, h *hubEnv) error {
	if h.info.DPS == nil {
		return fmt.Errorf("the hub's Info has no DPS member")
	}
	groupKey, ok := h.info.DPS.Groups[provGroup]
	if !ok {
		return fmt.Errorf("Info.DPS.Groups has no %q: %v", provGroup, h.info.DPS.Groups)
	}
	return provisionAndCall(ctx, t, h, "prov-group-ws-1", provSpec{groupKey: groupKey, websocket: true}, 0)
}

// individualEnrollment: the same with an individual enrollment's own key.
func individualEnrollment(ctx context.Context, t *testing.T, h *hubEnv) error {
	if h.info.DPS == nil {
		return fmt.Errorf("the hub's Info has no DPS member")
	}
	key, ok := h.info.DPS.Enrollments[provIndividual]
	if !ok {
		return fmt.Errorf("Info.DPS.Enrollments has no %q: %v", provIndividual, h.info.DPS.Enrollments)
	}
	return provisionAndCall(ctx, t, h, provIndividual, provSpec{key: key}, 0)
}

// wrongProvisioningKey: an individual enrollment with a wrong key, and a
// group device whose key was derived from a wrong group key. The SDK must
// get a 401 (UnauthorizedError, with a JSON body holding a 401xxx errorCode:
// the SDK JSON.parses every response) within the scenario's deadline, and no
// device may be created for the refused group registration.
func wrongProvisioningKey(ctx context.Context, t *testing.T, h *hubEnv) error {
	const wrongKey = "d3Jvbmd3cm9uZ3dyb25nd3Jvbmd3cm9uZ3dyb25nd3I="
	groupRegID := "prov-group-refused-1"
	cases := []struct {
		regID string
		spec  provSpec
	}{
		{provBadKey, provSpec{key: wrongKey}},
		{groupRegID, provSpec{groupKey: wrongKey}},
	}
	procs := make([]*node, len(cases))
	for i, c := range cases {
		p, err := h.startProvision(ctx, t, c.regID, c.spec)
		if err != nil {
			return err
		}
		procs[i] = p
	}
	var problems []string
	for i, c := range cases {
		l, err := registration(ctx, procs[i])
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		if err := refused401(l); err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", c.regID, err))
		}
	}
	if len(problems) > 0 {
		return joinProblems(problems)
	}
	// The refused group registration created no device.
	r, err := h.invokeOne(ctx, t, call{Device: groupRegID, MethodName: "echo", Payload: json.RawMessage(`{}`)})
	if err != nil {
		return err
	}
	if err := wantError(r, "", 404, 404001); err != nil {
		return fmt.Errorf("a refused group registration must not create the device %s: %w", groupRegID, err)
	}
	return nil
}

// refused401 checks provision.js's error line for a refused registration.
func refused401(l provLine) error {
	if l.Event != "error" || l.Where != "register" {
		return fmt.Errorf("want the registration refused with 401, got %s", l)
	}
	var problems []string
	if l.Name != "UnauthorizedError" {
		problems = append(problems, fmt.Sprintf("SDK error %s, want UnauthorizedError", l.Name))
	}
	if l.Status == nil || *l.Status != 401 {
		problems = append(problems, fmt.Sprintf("DPS status %s, want 401", intp(l.Status)))
	}
	var body struct {
		ErrorCode *int   `json:"errorCode"`
		Message   string `json:"message"`
	}
	if l.Result == nil || json.Unmarshal([]byte(*l.Result), &body) != nil || body.ErrorCode == nil {
		problems = append(problems, fmt.Sprintf("response body %s, want a JSON object with a numeric errorCode", strp(l.Result)))
	} else if *body.ErrorCode/1000 != 401 {
		problems = append(problems, fmt.Sprintf("errorCode %d, want 401xxx", *body.ErrorCode))
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s: %s", strings.Join(problems, "; "), l)
	}
	return nil
}

// x509CASignedDevice: an SDK device with the certificate the hub issued
// (Info.X509) connects without a password and answers a method call.
func x509CASignedDevice(ctx context.Context, t *testing.T, h *hubEnv) error {
	files, ok := h.info.X509[x509Device]
	if !ok {
		return fmt.Errorf("Info.X509 has no %q: %v", x509Device, h.info.X509)
	}
	d, err := h.startX509Device(ctx, t, x509Device, x509Device, files.CertFile, files.KeyFile)
	if err != nil {
		return err
	}
	return x509Echo(ctx, t, h, d, x509Device)
}

// x509Echo waits for an X.509 device.js to be ready and calls its echo.
func x509Echo(ctx context.Context, t *testing.T, h *hubEnv, d *node, id string) error {
	ev, err := openOutcome(ctx, d)
	if err != nil {
		return err
	}
	if ev.Event != "ready" {
		return fmt.Errorf("X.509 device %s was refused: %s", id, ev)
	}
	payload := fmt.Sprintf(`{"x509":%q}`, id)
	r, err := h.invokeOne(ctx, t, call{Device: id, MethodName: "echo", Payload: json.RawMessage(payload)})
	if err != nil {
		return err
	}
	if err := wantResult(r, 200, payload); err != nil {
		return fmt.Errorf("echo on X.509 device %s: %w", id, err)
	}
	return nil
}

// x509WrongCertificate: a CA-signed device impersonated with a self-signed
// certificate carrying its id as CommonName, and with the certificate the
// hub issued to another device, is refused: the SDK's open fails and it
// never becomes ready.
func x509WrongCertificate(ctx context.Context, t *testing.T, h *hubEnv) error {
	if _, ok := h.info.X509[x509Victim]; !ok {
		return fmt.Errorf("Info.X509 has no %q: %v", x509Victim, h.info.X509)
	}
	other, ok := h.info.X509[x509Device]
	if !ok {
		return fmt.Errorf("Info.X509 has no %q: %v", x509Device, h.info.X509)
	}
	forged, err := newSelfSignedCert(t, x509Victim)
	if err != nil {
		return err
	}
	cases := []struct{ name, certFile, keyFile string }{
		{"self-signed, CN " + x509Victim, forged.certFile, forged.keyFile},
		{"issued by the hub to " + x509Device, other.CertFile, other.KeyFile},
	}
	var problems []string
	for _, c := range cases {
		d, err := h.startX509Device(ctx, t, x509Victim+" ("+c.name+")", x509Victim, c.certFile, c.keyFile)
		if err != nil {
			return err
		}
		if err := wantOpenRefused(ctx, d, x509Victim); err != nil {
			problems = append(problems, c.name+": "+err.Error())
		}
	}
	return joinProblems(problems)
}

// x509GroupEnrollment: a device with a certificate signed by the hub's CA
// (CN = its registration id) registers through the X.509 enrollment group
// with X509Security: assigned, with the group in the registrationState's
// x509 echo (§5.4); it then connects to the hub with the same certificate
// (x509=true) and answers a method call.
func x509GroupEnrollment(ctx context.Context, t *testing.T, h *hubEnv) error {
	const regID = "prov-x509-dev-1"
	cert, err := h.newCASignedCert(t, regID)
	if err != nil {
		return err
	}
	return provisionAndCall(ctx, t, h, regID, provSpec{certFile: cert.certFile, keyFile: cert.keyFile}, 0, func(l provLine) error {
		if g, _ := jsonAt(json.RawMessage(l.State), "x509.enrollmentGroupId"); g != provX509Group {
			return fmt.Errorf("registrationState x509.enrollmentGroupId %v, want %q: %s", g, provX509Group, l.State)
		}
		return nil
	})
}

// x509RegistrationRefused: an X509Security registration with a
// self-signed certificate (CN = the registration id), which chains to no
// CA of the X.509 enrollment group, gets 401 with a JSON body, no hang, and
// no device is created.
func x509RegistrationRefused(ctx context.Context, t *testing.T, h *hubEnv) error {
	const regID = "prov-x509-forged-1"
	forged, err := newSelfSignedCert(t, regID)
	if err != nil {
		return err
	}
	p, err := h.startProvision(ctx, t, regID, provSpec{certFile: forged.certFile, keyFile: forged.keyFile})
	if err != nil {
		return err
	}
	l, err := registration(ctx, p)
	if err != nil {
		return err
	}
	if err := refused401(l); err != nil {
		return err
	}
	r, err := h.invokeOne(ctx, t, call{Device: regID, MethodName: "echo", Payload: json.RawMessage(`{}`)})
	if err != nil {
		return err
	}
	if err := wantError(r, "", 404, 404001); err != nil {
		return fmt.Errorf("a refused X.509 registration must not create the device %s: %w", regID, err)
	}
	return nil
}

// wantOpenRefused waits for device.js's open to fail as IoT Hub makes it
// fail: TLS completes and CONNACK refuses (5, not authorized), which the SDK
// maps to UnauthorizedError and does not retry. A refusal in the TLS
// handshake instead reaches the SDK as a socket error (NotConnectedError),
// which its retry policy retries for minutes: the scenario then reaches its
// deadline.
func wantOpenRefused(ctx context.Context, d *node, id string) error {
	ev, err := openOutcome(ctx, d)
	if err != nil {
		return fmt.Errorf("X.509 device %s with a certificate the hub must refuse (want CONNACK not authorized; a TLS-level refusal makes the SDK retry): %w", id, err)
	}
	if ev.Event == "ready" {
		return fmt.Errorf("X.509 device %s connected and subscribed with a certificate the hub must refuse", id)
	}
	if ev.Name != "UnauthorizedError" && !strings.Contains(strings.ToLower(ev.Message), "not authorized") {
		return fmt.Errorf("X.509 device %s: open failed with %s %q, want UnauthorizedError (CONNACK not authorized)", id, ev.Name, ev.Message)
	}
	return nil
}

// x509Cmd is one stdin command of x509_registry.js.
type x509Cmd struct {
	ID        string `json:"id"`
	Op        string `json:"op"`
	Device    string `json:"device"`
	Primary   string `json:"primary,omitempty"`
	Secondary string `json:"secondary,omitempty"`
}

// registryDo sends one command to x509_registry.js and returns its result.
func registryDo(ctx context.Context, p *twinProc, what string, c x509Cmd) (twinLine, error) {
	c.ID = p.nextID()
	return p.send(ctx, what, c.ID, c)
}

// x509SelfSignedThumbprint: a device registered through the service SDK's
// Registry.create with the thumbprints of two self-signed certificates
// (primary SHA-256, secondary SHA-1, upper-case hex as the portal shows
// them) connects with either; a third self-signed certificate with the same
// CommonName is refused.
func x509SelfSignedThumbprint(ctx context.Context, t *testing.T, h *hubEnv) error {
	const id = "x509-thumb"
	primary, err := newSelfSignedCert(t, id)
	if err != nil {
		return err
	}
	secondary, err := newSelfSignedCert(t, id)
	if err != nil {
		return err
	}
	other, err := newSelfSignedCert(t, id)
	if err != nil {
		return err
	}
	reg, err := h.x509Registry(ctx, t)
	if err != nil {
		return err
	}
	l, err := registryDo(ctx, reg, "Registry.create selfSigned", x509Cmd{Op: "createSelfSigned", Device: id, Primary: primary.sha256Thumbprint(), Secondary: secondary.sha1Thumbprint()})
	if err != nil {
		return err
	}
	if !l.OK {
		return fmt.Errorf("Registry.create with x509Thumbprint failed: %s", l)
	}
	if typ, _ := jsonAt(l.Device, "authentication.type"); typ != "selfSigned" {
		return fmt.Errorf("created device's authentication.type %v, want selfSigned: %s", typ, l)
	}
	for _, c := range []struct {
		name string
		cert selfSignedCert
	}{{"primary, SHA-256", primary}, {"secondary, SHA-1", secondary}} {
		d, err := h.startX509Device(ctx, t, id+" ("+c.name+")", id, c.cert.certFile, c.cert.keyFile)
		if err != nil {
			return err
		}
		if err := x509Echo(ctx, t, h, d, id); err != nil {
			return fmt.Errorf("%s thumbprint: %w", c.name, err)
		}
		d.stop()
	}
	d, err := h.startX509Device(ctx, t, id+" (unregistered certificate)", id, other.certFile, other.keyFile)
	if err != nil {
		return err
	}
	return wantOpenRefused(ctx, d, id)
}
