package twindoc

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestStateRoundTrip: UnmarshalJSON(MarshalJSON) restores everything
// observable, to the nanosecond, and marshals to the same bytes.
func TestStateRoundTrip(t *testing.T) {
	tw := New(t0)
	mustUpdate(t, tw, `{"tags":{"site":"<&>","n":{"m":[1,null,{"k":"v"}]}},"properties":{"desired":{"f":1.50,"big":1e400,"s":"\u0000\u2028"}}}`, false, at(1).Add(7))
	mustUpdate(t, tw, `{"properties":{"desired":`+docsDepth10+`}}`, false, at(2).Add(1))
	mustPatch(t, tw, `{"r":{"s":true},"max":4503599627370495}`, time.Date(2030, 1, 1, 0, 0, 0, 999999999, time.FixedZone("", -3600)))
	b := state(t, tw)

	var got Twin
	if err := json.Unmarshal([]byte(b), &got); err != nil {
		t.Fatalf("json.Unmarshal: %v", err)
	}
	if again := state(t, &got); again != b {
		t.Errorf("got state %s, want %s", again, b)
	}
	checks := []struct{ name, got, want string }{
		{"DeviceJSON", string(got.DeviceJSON()), string(tw.DeviceJSON())},
		{"Document", string(got.Document(Identity{DeviceID: "d"})), string(tw.Document(Identity{DeviceID: "d"}))},
		{"ETag", got.ETag(), tw.ETag()},
		{"tags", string(appendNode(nil, got.tags)), string(appendNode(nil, tw.tags))},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %s, want %s", c.name, c.got, c.want)
		}
	}
	if got.Version() != tw.Version() || got.tagWrites != tw.tagWrites {
		t.Errorf("got version %d tag writes %d, want %d %d", got.Version(), got.tagWrites, tw.Version(), tw.tagWrites)
	}
	if gotAt, want := got.desired.members["f"].meta.at, at(1).Add(7); !gotAt.Equal(want) {
		t.Errorf("got time %v, want %v", gotAt, want)
	}
	if got.reported.size != tw.reported.size || got.desired.size != tw.desired.size || got.tags.size != tw.tags.size {
		t.Errorf("got sizes %d %d %d, want %d %d %d", got.tags.size, got.desired.size, got.reported.size, tw.tags.size, tw.desired.size, tw.reported.size)
	}
	// The restored twin goes on exactly like the original.
	for _, x := range []*Twin{tw, &got} {
		mustPatch(t, x, `{"r":{"t":1}}`, at(9))
		mustUpdate(t, x, `{"tags":{"n":null},"properties":{"desired":{"f":null}}}`, false, at(9))
	}
	if a, b := state(t, &got), state(t, tw); a != b {
		t.Errorf("after more writes: got %s, want %s", a, b)
	}
}

// TestStateNewTwin: a new twin's state (never-written tags) round-trips,
// and its tags stay absent from the document.
func TestStateNewTwin(t *testing.T) {
	b := state(t, New(t0))
	var got Twin
	if err := got.UnmarshalJSON([]byte(b)); err != nil {
		t.Fatalf("UnmarshalJSON(%s): %v", b, err)
	}
	if again := state(t, &got); again != b {
		t.Errorf("got %s, want %s", again, b)
	}
	if strings.Contains(string(got.Document(Identity{})), `"tags"`) {
		t.Errorf("got tags in the document of a restored new twin")
	}
}

// TestStateInvalid: what is not a state is an error and leaves t as it was.
func TestStateInvalid(t *testing.T) {
	valid := `{"format":1,"desiredVersion":2,"reportedVersion":1,"tagWrites":0,"tags":{"m":{}},"desired":{"t":"2024-05-15T15:00:53.840848712Z","v":2,"m":{"a":{"t":"2024-05-15T15:00:53Z","v":2,"j":1}}},"reported":{"m":{}}}`
	var probe Twin
	if err := probe.UnmarshalJSON([]byte(valid)); err != nil {
		t.Fatalf("the valid base: %v", err)
	}
	swap := func(from, to string) string { return strings.Replace(valid, from, to, 1) }
	tests := []struct{ name, state string }{
		{"empty", ``},
		{"garbage", `not json`},
		{"null", `null`},
		{"empty object", `{}`},
		{"array", `[1]`},
		{"a twin document", string(New(t0).Document(Identity{DeviceID: "d"}))},
		{"a device document", string(New(t0).DeviceJSON())},
		{"future format", swap(`"format":1`, `"format":2`)},
		{"format a string", swap(`"format":1`, `"format":"1"`)},
		{"desired version 0", swap(`"desiredVersion":2`, `"desiredVersion":0`)},
		{"fractional version", swap(`"desiredVersion":2`, `"desiredVersion":2.5`)},
		{"negative tag writes", swap(`"tagWrites":0`, `"tagWrites":-1`)},
		{"unknown member", swap(`"format":1,`, `"format":1,"x":1,`)},
		{"missing section", swap(`,"reported":{"m":{}}`, ``)},
		{"section a leaf", swap(`"reported":{"m":{}}`, `"reported":{"j":1}`)},
		{"node with m and j", swap(`"reported":{"m":{}}`, `"reported":{"m":{},"j":1}`)},
		{"node with neither", swap(`"reported":{"m":{}}`, `"reported":{}`)},
		{"leaf null", swap(`"j":1`, `"j":null`)},
		{"leaf object", swap(`"j":1`, `"j":{}`)},
		{"leaf out of range", swap(`"j":1`, `"j":4503599627370496`)},
		{"bad key", swap(`"a":{`, `"a.b":{`)},
		{"bad time", swap(`"t":"2024-05-15T15:00:53Z"`, `"t":"yesterday"`)},
		{"time a number", swap(`"t":"2024-05-15T15:00:53Z"`, `"t":1`)},
		{"node member unknown", swap(`"v":2,"j":1`, `"v":2,"x":0,"j":1`)},
		{"version 0 written", swap(`"v":2,"j":1`, `"v":0,"j":1`)},
		{"truncated", valid[:len(valid)-1]},
		{"tags never written", swap(`"tags":{"m":{}}`, `"tags":{"m":{"a":{"j":1}}}`)},
		{"depth 11", swap(`"reported":{"m":{}}`, `"reported":{"m":{"a":`+strings.Repeat(`{"m":{"a":`, 11)+`{"j":1}`+strings.Repeat(`}}`, 11)+`}}`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tw := richTwin(t)
			before := state(t, tw)
			if err := tw.UnmarshalJSON([]byte(tt.state)); err == nil {
				t.Errorf("got success, want an error")
			}
			if got := state(t, tw); got != before {
				t.Errorf("got state %s, want unchanged %s", got, before)
			}
		})
	}
}

// TestCloneIsIndependent: writes to a clone never show in its original,
// nor the other way round.
func TestCloneIsIndependent(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	orig := New(now)
	if _, err := orig.PatchReported([]byte(`{"a":{"b":1}}`), now); err != nil {
		t.Fatal(err)
	}
	before, _ := orig.MarshalJSON()
	c := orig.Clone()
	if _, err := c.PatchReported([]byte(`{"a":{"b":2,"c":3}}`), now.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Update([]byte(`{"tags":{"t":1},"properties":{"desired":{"d":1}}}`), false, now.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if after, _ := orig.MarshalJSON(); string(after) != string(before) {
		t.Fatalf("writing the clone changed the original:\n%s\n%s", before, after)
	}
	cloned, _ := c.MarshalJSON()
	if _, err := orig.PatchReported([]byte(`{"a":null}`), now.Add(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	if again, _ := c.MarshalJSON(); string(again) != string(cloned) {
		t.Fatalf("writing the original changed the clone:\n%s\n%s", cloned, again)
	}
}
