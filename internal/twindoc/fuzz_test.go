package twindoc

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/methodd/methodd/iothub"
)

// fuzzSeeds are the vectors and the bad inputs of the table tests, except
// the 32 KB ones: the fuzzer spends its time minimizing inputs that large
// (TestSizeLimit covers them).
func fuzzSeeds() []string {
	seeds := []string{
		`{"firmware":{"version":"1.2.3"},"battery":55,"old":null}`,
		`{"telemetryInterval":30,"route":null}`,
		`{}`, docsDepth10, depth11,
		`{"a":[null,{"b":[1.5e3,-0,"\u0000"]}],"$version":1}`,
		`{"i":4503599627370495,"j":-4503599627370496}`,
	}
	for _, b := range badValues {
		seeds = append(seeds, `{`+b.member+`}`)
	}
	for _, m := range malformed {
		seeds = append(seeds, m.body)
	}
	return seeds
}

// clone is an independent copy of t: nodes are never modified, so copying
// the roots copies the twin.
func (t *Twin) clone() *Twin {
	c := *t
	return &c
}

// checkFailed requires err to be a 400004 that left tw as before.
func checkFailed(t *testing.T, tw *Twin, err error, before string) {
	t.Helper()
	var e *iothub.Error
	if !errors.As(err, &e) || e.Code != iothub.CodeArgumentInvalid {
		t.Fatalf("got error %v, want an *iothub.Error 400004", err)
	}
	if got := state(t, tw); got != before {
		t.Fatalf("failed write changed the twin:\n got %s\nwant %s", got, before)
	}
}

// checkSound requires tw's renderings to be valid JSON, its sections
// within their limits and its state to round-trip.
func checkSound(t *testing.T, tw *Twin) {
	t.Helper()
	if !json.Valid(tw.DeviceJSON()) {
		t.Fatalf("invalid DeviceJSON %s", tw.DeviceJSON())
	}
	if !json.Valid(tw.Document(Identity{DeviceID: "d"})) {
		t.Fatalf("invalid Document %s", tw.Document(Identity{DeviceID: "d"}))
	}
	if tw.tags.size > MaxTagsBytes || tw.desired.size > MaxDesiredBytes || tw.reported.size > MaxReportedBytes {
		t.Fatalf("got sizes %d %d %d, above the limits", tw.tags.size, tw.desired.size, tw.reported.size)
	}
	b := state(t, tw)
	var again Twin
	if err := again.UnmarshalJSON([]byte(b)); err != nil {
		t.Fatalf("UnmarshalJSON(MarshalJSON): %v", err)
	}
	if got := state(t, &again); got != b {
		t.Fatalf("state round trip: got %s, want %s", got, b)
	}
}

// FuzzPatchReported: any patch either fails with a 400004 and the twin
// unchanged, or moves reported $version by exactly one and leaves a sound
// twin.
func FuzzPatchReported(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add([]byte(s))
	}
	base := richTwin(f)
	before := state(f, base)
	f.Fuzz(func(t *testing.T, patch []byte) {
		tw := base.clone()
		was := tw.reportedVersion
		v, err := tw.PatchReported(patch, at(9))
		if err != nil {
			checkFailed(t, tw, err, before)
			return
		}
		if v != was+1 || tw.reportedVersion != v {
			t.Fatalf("got version %d (twin %d), want %d", v, tw.reportedVersion, was+1)
		}
		checkSound(t, tw)
	})
}

// FuzzUpdate: any body, as a PATCH or a PUT, either fails with a 400004
// and the twin unchanged, or leaves a sound twin whose versions moved by at
// most one and whose Change matches them.
func FuzzUpdate(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add([]byte(`{"tags":`+s+`}`), false)
		f.Add([]byte(`{"properties":{"desired":`+s+`}}`), true)
		f.Add([]byte(s), false)
	}
	f.Add([]byte(`{"properties":{"desired":"x"}}`), false)
	f.Add(New(t0).Document(Identity{DeviceID: "d"}), true)
	base := richTwin(f)
	before := state(f, base)
	f.Fuzz(func(t *testing.T, body []byte, replace bool) {
		tw := base.clone()
		desired, tags := tw.desiredVersion, tw.tagWrites
		c, err := tw.Update(body, replace, at(9))
		if err != nil {
			checkFailed(t, tw, err, before)
			return
		}
		if c.DesiredVersion != tw.desiredVersion {
			t.Fatalf("got Change.DesiredVersion %d, twin at %d", c.DesiredVersion, tw.desiredVersion)
		}
		switch tw.desiredVersion - desired {
		case 0:
			if c.Desired != nil {
				t.Fatalf("got Change.Desired %s without a desired write", c.Desired)
			}
		case 1:
			if !json.Valid(c.Desired) {
				t.Fatalf("got invalid Change.Desired %s", c.Desired)
			}
		default:
			t.Fatalf("desired $version moved from %d to %d", desired, tw.desiredVersion)
		}
		if n := tw.tagWrites - tags; n != 0 && n != 1 {
			t.Fatalf("tag writes moved from %d to %d", tags, tw.tagWrites)
		}
		checkSound(t, tw)
	})
}
