package conformance

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/methodd/methodd/internal/localhub"
	"github.com/methodd/methodd/iothub"
)

// twinScenarios: device twins between the SDK device (twin_device.js), the
// local hub and the SDK back end (twin_service.js). Each uses device IDs of
// its own, so they run in parallel on one hub.
var twinScenarios = []scenario{
	{"twin_get_new_device", 60 * time.Second, twinGetNewDevice},
	{"twin_reported_update_and_delete", 60 * time.Second, twinReportedUpdateAndDelete},
	{"twin_desired_notification", 60 * time.Second, twinDesiredNotification},
	{"twin_service_etag_412", 60 * time.Second, twinServiceETag},
	{"twin_tags_invisible_to_device", 60 * time.Second, twinTagsInvisibleToDevice},
	{"twin_module", 60 * time.Second, twinModule},
	{"twin_after_hub_restart", 90 * time.Second, twinAfterHubRestart},
	{"twin_registry_create_delete", 60 * time.Second, twinRegistryCreateDelete},
	{"twin_reported_refused", 60 * time.Second, twinReportedRefused},
}

// TestSDKTwin runs every twin scenario against one faithful local hub, one
// subtest per scenario, in parallel.
func TestSDKTwin(t *testing.T) {
	requireNodeModules(t)
	t.Parallel()
	h := startHub(t, localhub.Faults{})
	for _, sc := range twinScenarios {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			runScenario(t, sc, h)
		})
	}
}

// readyTwinDevice registers the identity, starts twin_device.js for it and
// gets its twin once (the SDK's Twin object exists from then on).
func (h *hubEnv) readyTwinDevice(ctx context.Context, t *testing.T, id, module string) (*twinProc, twinLine, error) {
	cs, err := h.device(id, module)
	if err != nil {
		return nil, twinLine{}, err
	}
	name := id
	if module != "" {
		name += "/" + module
	}
	d, err := h.startTwinDevice(ctx, t, name, cs)
	if err != nil {
		return nil, twinLine{}, err
	}
	g, err := d.ok(ctx, "device getTwin", twinCmd{Op: "getTwin"})
	if err != nil {
		return nil, twinLine{}, err
	}
	return d, g, nil
}

// twinGetNewDevice: a new device's twin as the device SDK gets it — both
// sections at $version 1, and on the wire only desired and reported, each
// holding only its $version (no $metadata, no tags; TV-T1).
func twinGetNewDevice(ctx context.Context, t *testing.T, h *hubEnv) error {
	_, g, err := h.readyTwinDevice(ctx, t, "tw-new", "")
	if err != nil {
		return err
	}
	var c twinCheck
	c.equal("SDK twin.properties.desired", g.Desired, "$version", 1)
	c.equal("SDK twin.properties.reported", g.Reported, "$version", 1)
	c.keys("GET response body", g.Raw, "", "desired", "reported")
	c.keys("GET response body", g.Raw, "desired", "$version")
	c.keys("GET response body", g.Raw, "reported", "$version")
	return c.err()
}

// twinReportedUpdateAndDelete: two reported patches from the device, the
// second deleting a property with null; the back end sees the merge and
// $version 3 (1 + one per patch).
func twinReportedUpdateAndDelete(ctx context.Context, t *testing.T, h *hubEnv) error {
	const id = "tw-reported"
	d, _, err := h.readyTwinDevice(ctx, t, id, "")
	if err != nil {
		return err
	}
	if err := d.report(ctx, `{"firmware":{"version":"1.2.3"},"battery":55}`); err != nil {
		return err
	}
	if err := d.report(ctx, `{"battery":null}`); err != nil {
		return err
	}
	s, err := h.startTwinService(ctx, t)
	if err != nil {
		return err
	}
	g, err := s.ok(ctx, "Registry.getTwin", twinCmd{Op: "getTwin", Device: id})
	if err != nil {
		return err
	}
	var c twinCheck
	c.equal("service twin", g.Twin, "deviceId", id)
	c.equal("service twin", g.Twin, "properties.reported.firmware.version", "1.2.3")
	c.absent("service twin", g.Twin, "properties.reported.battery")
	c.equal("service twin", g.Twin, "properties.reported.$version", 3)
	c.equal("service twin", g.Twin, "properties.desired.$version", 1)
	return c.err()
}

// twinDesiredNotification: the back end updates desired properties with the
// etag of its Twin; the listening device gets the patch with the $version
// the back end's twin shows after the update.
func twinDesiredNotification(ctx context.Context, t *testing.T, h *hubEnv) error {
	const id = "tw-desired"
	d, s, err := h.listeningTwinPair(ctx, t, id)
	if err != nil {
		return err
	}
	before := d.desiredFromHub()
	u, err := s.ok(ctx, "twin.update desired", twinCmd{Op: "update", As: "A", Patch: json.RawMessage(`{"properties":{"desired":{"interval":30}}}`)})
	if err != nil {
		return err
	}
	version, ok := jsonAt(u.Twin, "properties.desired.$version")
	if !ok {
		return fmt.Errorf("twin.update result has no properties.desired.$version: %s", u)
	}
	n, err := d.nextDesiredFromHub(ctx, before)
	if err != nil {
		return err
	}
	var c twinCheck
	c.equal("service twin after the update", u.Twin, "properties.desired.interval", 30)
	c.equal("desired notification", n.Patch, "interval", 30)
	c.equal("desired notification", n.Patch, "$version", version)
	return c.err()
}

// twinServiceETag: optimistic concurrency of the back end. Two Twin objects
// read at the same etag; the first update succeeds and moves the etag, the
// second (stale etag) fails 412 InvalidEtagError and changes nothing. "*"
// matches any etag. An unknown device is DeviceNotFoundError.
func twinServiceETag(ctx context.Context, t *testing.T, h *hubEnv) error {
	const id = "tw-etag"
	if _, err := h.device(id, ""); err != nil {
		return err
	}
	s, err := h.startTwinService(ctx, t)
	if err != nil {
		return err
	}
	a, err := s.ok(ctx, "Registry.getTwin (A)", twinCmd{Op: "getTwin", Device: id, As: "A"})
	if err != nil {
		return err
	}
	b, err := s.ok(ctx, "Registry.getTwin (B)", twinCmd{Op: "getTwin", Device: id, As: "B"})
	if err != nil {
		return err
	}
	e1, _ := jsonAt(a.Twin, "etag")
	if e, _ := jsonAt(b.Twin, "etag"); e1 == nil || e1 == "" || e1 == "*" || e != e1 {
		return fmt.Errorf("two reads of an unchanged twin have etags %v and %v, want one concrete etag", e1, e)
	}
	u, err := s.ok(ctx, "twin.update with the current etag", twinCmd{Op: "update", As: "A", Patch: json.RawMessage(`{"properties":{"desired":{"first":1}}}`)})
	if err != nil {
		return err
	}
	var c twinCheck
	e2, _ := jsonAt(u.Twin, "etag")
	if e2 == nil || e2 == "" || e2 == e1 {
		c.add("twin.update returned etag %v, want a new one (was %v)", e2, e1)
	}
	stale, err := s.do(ctx, "twin.update with a stale etag", twinCmd{Op: "update", As: "B", Patch: json.RawMessage(`{"properties":{"desired":{"stale":true}}}`)})
	if err != nil {
		return err
	}
	if err := wantSDKError("twin.update with the stale etag "+fmt.Sprint(e1), stale, "InvalidEtagError", 412); err != nil {
		c.add("%v", err)
	}
	wild, err := s.ok(ctx, "Registry.updateTwin with etag *", twinCmd{Op: "updateTwin", Device: id, ETag: "*", Patch: json.RawMessage(`{"properties":{"desired":{"any":true}}}`)})
	if err != nil {
		return err
	}
	c.equal("twin after If-Match *", wild.Twin, "properties.desired.any", true)
	c.equal("twin after If-Match *", wild.Twin, "properties.desired.first", 1)
	c.absent("twin after the stale update and If-Match *", wild.Twin, "properties.desired.stale")
	c.equal("twin after two desired updates", wild.Twin, "properties.desired.$version", 3)
	nf, err := s.do(ctx, "Registry.getTwin of an unknown device", twinCmd{Op: "getTwin", Device: "tw-no-such-device"})
	if err != nil {
		return err
	}
	if err := wantSDKError("Registry.getTwin of an unknown device", nf, "DeviceNotFoundError", 404); err != nil {
		c.add("%v", err)
	}
	return c.err()
}

// twinTagsInvisibleToDevice: tags written by the back end are in its twin,
// not in the device's, and a tags-only update notifies nothing and leaves
// desired $version alone. Absence of a notification is proven by order: the
// first notification after the tags update must be the desired update made
// after it.
func twinTagsInvisibleToDevice(ctx context.Context, t *testing.T, h *hubEnv) error {
	const id = "tw-tags"
	d, s, err := h.listeningTwinPair(ctx, t, id)
	if err != nil {
		return err
	}
	before := d.desiredFromHub()
	if _, err := s.ok(ctx, "twin.update tags", twinCmd{Op: "update", As: "A", Patch: json.RawMessage(`{"tags":{"site":"a","floor":2}}`)}); err != nil {
		return err
	}
	g, err := s.ok(ctx, "Registry.getTwin after the tags update", twinCmd{Op: "getTwin", Device: id})
	if err != nil {
		return err
	}
	var c twinCheck
	c.equal("service twin", g.Twin, "tags.site", "a")
	c.equal("service twin", g.Twin, "tags.floor", 2)
	c.equal("service twin after a tags-only update", g.Twin, "properties.desired.$version", 1)
	dg, err := d.ok(ctx, "device getTwin after the tags update", twinCmd{Op: "getTwin"})
	if err != nil {
		return err
	}
	c.keys("device GET response body", dg.Raw, "", "desired", "reported")
	if strings.Contains(string(dg.Raw), "site") {
		c.add("device GET response body holds the tags: %s", dg.Raw)
	}
	u, err := s.ok(ctx, "twin.update desired", twinCmd{Op: "update", As: "A", Patch: json.RawMessage(`{"properties":{"desired":{"mode":"eco"}}}`)})
	if err != nil {
		return err
	}
	c.equal("service twin after the desired update", u.Twin, "properties.desired.$version", 2)
	version, _ := jsonAt(u.Twin, "properties.desired.$version")
	n, err := d.nextDesiredFromHub(ctx, before)
	if err != nil {
		return err
	}
	if _, ok := jsonAt(n.Patch, "mode"); !ok {
		c.add("the first desired notification after a tags-only update is %s; want none for the tags, then the desired update {\"mode\":\"eco\"}", n.Patch)
	} else {
		c.equal("desired notification", n.Patch, "mode", "eco")
		c.equal("desired notification", n.Patch, "$version", version)
		c.absent("desired notification", n.Patch, "site")
	}
	// One more round trip: a stray notification written before its answer
	// would have arrived by now.
	if _, err := d.ok(ctx, "device getTwin", twinCmd{Op: "getTwin"}); err != nil {
		return err
	}
	if got := d.desiredFromHub() - before; got != 1 {
		c.add("the device got %d desired notifications for one tags and one desired update, want 1", got)
	}
	return c.err()
}

// twinModule: a module identity (ModuleClient) reports properties; they are
// in the module twin, not in its device's twin.
func twinModule(ctx context.Context, t *testing.T, h *hubEnv) error {
	const id, mod = "tw-mod", "mod-t"
	d, _, err := h.readyTwinDevice(ctx, t, id, mod)
	if err != nil {
		return err
	}
	if err := d.report(ctx, `{"level":7,"module":{"name":"mod-t"}}`); err != nil {
		return err
	}
	s, err := h.startTwinService(ctx, t)
	if err != nil {
		return err
	}
	m, err := s.ok(ctx, "Registry.getModuleTwin", twinCmd{Op: "getTwin", Device: id, Module: mod})
	if err != nil {
		return err
	}
	g, err := s.ok(ctx, "Registry.getTwin of the module's device", twinCmd{Op: "getTwin", Device: id})
	if err != nil {
		return err
	}
	var c twinCheck
	c.equal("module twin", m.Twin, "deviceId", id)
	c.equal("module twin", m.Twin, "moduleId", mod)
	c.equal("module twin", m.Twin, "properties.reported.level", 7)
	c.equal("module twin", m.Twin, "properties.reported.module.name", "mod-t")
	c.equal("module twin", m.Twin, "properties.reported.$version", 2)
	c.equal("device twin", g.Twin, "deviceId", id)
	c.absent("device twin", g.Twin, "moduleId")
	c.absent("device twin", g.Twin, "properties.reported.level")
	c.absent("device twin", g.Twin, "properties.reported.module")
	c.equal("device twin", g.Twin, "properties.reported.$version", 1)
	return c.err()
}

// twinAfterHubRestart: twins and persistent sessions outlive a hub restart.
// On a hub of its own (same state dir and ports after the restart):
//   - a device reports, exits; after the restart a new process gets the
//     same reported properties at the same $version;
//   - a device that stays up through the restart is reconnected by its SDK
//     (clean session 0, twin topics NOT subscribed again, §1.6 item 4), and
//     its reported update and a desired notification must still work: the
//     hub has to restore the session's subscriptions from its state dir.
func twinAfterHubRestart(ctx context.Context, t *testing.T, _ *hubEnv) error {
	const fresh, alive = "tw-rs-fresh", "tw-rs-alive"
	h, err := startRestartableHub(ctx, t)
	if err != nil {
		return err
	}
	p1, _, err := h.readyTwinDevice(ctx, t, fresh, "")
	if err != nil {
		return err
	}
	if err := p1.report(ctx, `{"firmware":{"version":"2.0.0"},"note":"before restart"}`); err != nil {
		return err
	}
	g1, err := p1.ok(ctx, "device getTwin before the restart", twinCmd{Op: "getTwin"})
	if err != nil {
		return err
	}
	reportedVersion, ok := jsonAt(g1.Reported, "$version")
	if !ok {
		return fmt.Errorf("device getTwin before the restart has no reported $version: %s", g1)
	}
	p1.stop()

	p2, _, err := h.readyTwinDevice(ctx, t, alive, "")
	if err != nil {
		return err
	}
	if _, err := p2.ok(ctx, "twin.on('properties.desired')", twinCmd{Op: "listen"}); err != nil {
		return err
	}
	if err := p2.report(ctx, `{"phase":"before"}`); err != nil {
		return err
	}

	if err := h.restart(ctx, t); err != nil {
		return err
	}
	connects := 0
	reconnect, cancel := context.WithTimeout(ctx, twinOpTimeout)
	defer cancel()
	if _, err := p2.waitFor(reconnect, "the SDK's reconnection after the hub restart", func(e event) bool {
		if e.Event == "connect" {
			connects++
		}
		return connects == 2
	}); err != nil {
		return err
	}
	if err := p2.report(ctx, `{"phase":"after"}`); err != nil {
		return fmt.Errorf("the device that stayed up through the restart: %w", err)
	}
	s, err := h.startTwinService(ctx, t)
	if err != nil {
		return err
	}
	var c twinCheck
	g2, err := s.ok(ctx, "Registry.getTwin", twinCmd{Op: "getTwin", Device: alive, As: "A"})
	if err != nil {
		return err
	}
	c.equal("service twin of the device that stayed up", g2.Twin, "properties.reported.phase", "after")
	c.equal("service twin of the device that stayed up", g2.Twin, "properties.reported.$version", 3)
	before := p2.desiredFromHub()
	u, err := s.ok(ctx, "twin.update desired after the restart", twinCmd{Op: "update", As: "A", Patch: json.RawMessage(`{"properties":{"desired":{"afterRestart":true}}}`)})
	if err != nil {
		return err
	}
	version, _ := jsonAt(u.Twin, "properties.desired.$version")
	if n, err := p2.nextDesiredFromHub(ctx, before); err != nil {
		c.add("the device that stayed up through the restart: %v", err)
	} else {
		c.equal("desired notification after the restart", n.Patch, "afterRestart", true)
		c.equal("desired notification after the restart", n.Patch, "$version", version)
	}

	// The premise: the SDK did not subscribe to the twin topics again, so
	// the update and the notification above were routed by the restored session.
	c.problems = append(c.problems, twinResubscriptions(p2)...)

	_, g3, err := h.readyTwinDevice(ctx, t, fresh, "")
	if err != nil {
		return err
	}
	c.equal("reported properties got by a new process after the restart", g3.Reported, "firmware.version", "2.0.0")
	c.equal("reported properties got by a new process after the restart", g3.Reported, "note", "before restart")
	c.equal("reported properties got by a new process after the restart", g3.Reported, "$version", reportedVersion)
	c.equal("desired properties got by a new process after the restart", g3.Desired, "$version", 1)
	return c.err()
}

// twinResubscriptions reports the device's SUBSCRIBEs to twin topics after
// its first reconnection (none is expected from azure-iot-device-mqtt 1.16.4).
func twinResubscriptions(p *twinProc) []string {
	var problems []string
	connects := 0
	for _, e := range p.snapshot() {
		if e.Event == "connect" {
			connects++
		}
		if l, ok := parseTwinLine(e); ok && connects >= 2 && l.Event == "subscribe" && strings.HasPrefix(l.Topic, "$iothub/twin/") {
			problems = append(problems, "premise broken: the SDK subscribed to "+l.Topic+" again after reconnecting, so the hub's restored session was not what made twin calls work")
		}
	}
	return problems
}

// twinRegistryCreateDelete: Registry.create makes a device with generated
// keys that an SDK device can connect with; after Registry.delete its twin
// is DeviceNotFoundError.
func twinRegistryCreateDelete(ctx context.Context, t *testing.T, h *hubEnv) error {
	const id = "tw-created"
	s, err := h.startTwinService(ctx, t)
	if err != nil {
		return err
	}
	cr, err := s.ok(ctx, "Registry.create", twinCmd{Op: "create", Device: id})
	if err != nil {
		return err
	}
	var c twinCheck
	c.equal("created device", cr.Device, "deviceId", id)
	primary, _ := jsonAt(cr.Device, "authentication.symmetricKey.primaryKey")
	secondary, _ := jsonAt(cr.Device, "authentication.symmetricKey.secondaryKey")
	for _, k := range []struct {
		name string
		v    any
	}{{"primaryKey", primary}, {"secondaryKey", secondary}} {
		str, _ := k.v.(string)
		if b, err := base64.StdEncoding.DecodeString(str); err != nil || len(b) < 16 {
			c.add("created device: %s %q is not a generated base64 key (at least 16 bytes): %s", k.name, str, cr.Device)
		}
	}
	if primary == secondary {
		c.add("created device: primary and secondary keys are the same: %s", cr.Device)
	}
	key, _ := primary.(string)
	if err := c.err(); err != nil {
		return err
	}
	_, mqttPort, err := net.SplitHostPort(h.info.MQTTAddr)
	if err != nil {
		return err
	}
	cs := iothub.ConnectionString{HostName: localhub.HostName, DeviceID: id, SharedAccessKey: key, GatewayHostName: localhub.HostName + ":" + mqttPort}.String()
	d, err := h.startTwinDevice(ctx, t, id+" (Registry.create keys)", cs)
	if err != nil {
		return fmt.Errorf("device with the keys of Registry.create: %w", err)
	}
	g, err := d.ok(ctx, "device getTwin", twinCmd{Op: "getTwin"})
	if err != nil {
		return err
	}
	c.equal("new device's twin", g.Desired, "$version", 1)
	c.equal("new device's twin", g.Reported, "$version", 1)
	l, err := s.ok(ctx, "Registry.list", twinCmd{Op: "list"})
	if err != nil {
		return err
	}
	if !slices.Contains(l.Devices, id) {
		c.add("Registry.list: %v, want %s among them", l.Devices, id)
	}
	d.stop()
	if _, err := s.ok(ctx, "Registry.delete", twinCmd{Op: "delete", Device: id}); err != nil {
		return err
	}
	nf, err := s.do(ctx, "Registry.getTwin of the deleted device", twinCmd{Op: "getTwin", Device: id})
	if err != nil {
		return err
	}
	if err := wantSDKError("Registry.getTwin after Registry.delete", nf, "DeviceNotFoundError", 404); err != nil {
		c.add("%v", err)
	}
	return c.err()
}

// refusedReportedPatches break the document rules of §1.7; the hub must
// answer each with an error body the Node SDK turns into a failed update.
var refusedReportedPatches = []string{
	`{"a.b":1}`,
	`{"$x":1}`,
	nestedObjects(11),
}

// nestedObjects is a patch with n levels of objects (10 is the limit).
func nestedObjects(n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, `{"l%d":`, i)
	}
	b.WriteString(`{"leaf":1}`)
	b.WriteString(strings.Repeat("}", n))
	return b.String()
}

// twinReportedRefused: reported patches the hub must refuse fail in the
// device SDK (which fails an update only when the response body has a
// non-zero errorCode, §1.6 item 1), change nothing, and leave the device
// connected: later updates, one of them 10 levels deep, succeed.
func twinReportedRefused(ctx context.Context, t *testing.T, h *hubEnv) error {
	const id = "tw-refused"
	d, _, err := h.readyTwinDevice(ctx, t, id, "")
	if err != nil {
		return err
	}
	var c twinCheck
	for _, p := range refusedReportedPatches {
		r, err := d.do(ctx, "reported update "+p, twinCmd{Op: "report", Patch: json.RawMessage(p)})
		if err != nil {
			return err
		}
		if r.OK {
			c.add("reported update %s: the SDK reported success; the hub must refuse it with an error body (non-zero errorCode)", p)
		} else if r.Message == "" || r.Message == "undefined" {
			c.add("reported update %s failed without a message (the SDK uses the body's message): %s", p, r)
		}
	}
	if err := d.report(ctx, `{"ok":true}`); err != nil {
		return fmt.Errorf("after the refused updates: %w", err)
	}
	if err := d.report(ctx, nestedObjects(10)); err != nil {
		return fmt.Errorf("a patch of 10 levels of objects (the limit): %w", err)
	}
	s, err := h.startTwinService(ctx, t)
	if err != nil {
		return err
	}
	g, err := s.ok(ctx, "Registry.getTwin", twinCmd{Op: "getTwin", Device: id})
	if err != nil {
		return err
	}
	c.equal("service twin after 3 refused and 2 accepted updates", g.Twin, "properties.reported.$version", 3)
	c.equal("service twin", g.Twin, "properties.reported.ok", true)
	c.members("service twin reported properties", g.Twin, "properties.reported", "ok", "l1", "$version")
	return c.err()
}
