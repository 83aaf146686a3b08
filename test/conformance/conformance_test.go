// Package conformance makes the official Azure IoT Node SDKs (azure-iot-device,
// azure-iot-device-mqtt, azure-iothub; exact versions in package.json) the
// judges of methodd's local hub, daemon and invoke command (issue 7). The
// tests start real Node processes; `npm ci --prefix test/conformance` must
// have run (scripts/test.sh does).
package conformance

import (
	"context"
	"strings"
	"testing"

	"github.com/methodd/methodd/internal/localhub"
)

// TestSDK runs every SDK device ↔ hub ↔ SDK service scenario against one
// faithful local hub, one subtest per scenario, in parallel.
func TestSDK(t *testing.T) {
	requireNodeModules(t)
	t.Parallel()
	h := startHub(t, localhub.Faults{})
	for _, sc := range sdkScenarios {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			runScenario(t, sc, h)
		})
	}
}

func runScenario(t *testing.T, sc scenario, h *hubEnv) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), sc.timeout)
	defer cancel()
	if err := sc.run(ctx, t, h); err != nil {
		t.Fatal(err)
	}
}

// TestFaultsAreDetected proves that the scenarios can fail: each test-only
// hub fault breaks one behaviour the SDKs depend on, and the matching
// scenario must then report an error.
func TestFaultsAreDetected(t *testing.T) {
	requireNodeModules(t)
	t.Parallel()
	cases := []struct {
		fault    string
		faults   localhub.Faults
		scenario scenario
		want     string // in the scenario's error: it failed for the fault's reason
	}{
		// The SDK renews its SAS without subscribing again: calls fail after the first renewal.
		{"ForgetSubscriptions", localhub.Faults{ForgetSubscriptions: true}, byName("sas_renewal_60s"), "404103"},
		// The SDK's JSON.parse of an empty body fails and it replies 400 itself.
		{"EmptyNullPayload", localhub.Faults{EmptyNullPayload: true}, byName("null_payload"), "device status 400"},
		// Without application/json the service SDK does not parse the success body.
		{"OmitJSONContentType", localhub.Faults{OmitJSONContentType: true}, byName("json_round_trip"), "device status <none>"},
		// The Node device SDK fails a twin update only for a body with a non-zero errorCode: a refused patch reads as success.
		{"EmptyTwinErrorBody", localhub.Faults{EmptyTwinErrorBody: true}, byName("twin_reported_refused"), "the SDK reported success"},
	}
	for _, c := range cases {
		t.Run(c.fault+"/"+c.scenario.name, func(t *testing.T) {
			t.Parallel()
			h := startHub(t, c.faults)
			ctx, cancel := context.WithTimeout(context.Background(), c.scenario.timeout)
			defer cancel()
			err := c.scenario.run(ctx, t, h)
			if err == nil {
				t.Fatalf("scenario %s passed against a hub with fault %s; want it to fail", c.scenario.name, c.fault)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("scenario %s failed under fault %s, but not for its reason (want %q in the error): %v", c.scenario.name, c.fault, c.want, err)
			}
			t.Logf("failed as it must: %v", err)
		})
	}
}

func byName(name string) scenario {
	for _, list := range [][]scenario{sdkScenarios, twinScenarios} {
		for _, sc := range list {
			if sc.name == name {
				return sc
			}
		}
	}
	panic("no scenario " + name)
}
