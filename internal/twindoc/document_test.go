package twindoc

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestDocument compares whole documents, byte for byte, in the field order
// of the real hub's twin (§2.2).
func TestDocument(t *testing.T) {
	written := func(t *testing.T) *Twin {
		tw := New(t0)
		mustUpdate(t, tw, `{"tags":{"b":1,"a":{"c":"x"}},"properties":{"desired":{"one":{"two":2},"arr":[1]}}}`, false, at(1))
		mustPatch(t, tw, `{"r":"v"}`, at(2))
		return tw
	}
	cest := time.FixedZone("CEST", 2*3600)
	tests := []struct {
		name string
		twin func(*testing.T) *Twin
		id   Identity
		want string
	}{
		{
			name: "new device twin, defaults",
			twin: func(*testing.T) *Twin { return New(t0) },
			id:   Identity{DeviceID: "d1"},
			want: `{"deviceId":"d1","etag":"AAAAAAAAAAE=","deviceEtag":"","status":"enabled","statusUpdateTime":"0001-01-01T00:00:00Z",` +
				`"connectionState":"Disconnected","lastActivityTime":"0001-01-01T00:00:00Z","cloudToDeviceMessageCount":0,` +
				`"authenticationType":"sas","x509Thumbprint":{"primaryThumbprint":null,"secondaryThumbprint":null},"modelId":"","version":2,` +
				`"properties":{"desired":{"$metadata":{"$lastUpdated":"2024-05-15T15:00:53.8408487Z","$lastUpdatedVersion":1},"$version":1},` +
				`"reported":{"$metadata":{"$lastUpdated":"2024-05-15T15:00:53.8408487Z"},"$version":1}},"capabilities":{"iotEdge":false}}`,
		},
		{
			name: "written device twin",
			twin: written,
			id: Identity{DeviceID: `dev/1"`, DeviceEtag: "NjI2NTkyMzg4", ConnectionState: "Connected",
				LastActivityTime: at(3).In(cest), CloudToDeviceMessageCount: 3},
			want: `{"deviceId":"dev/1\"","etag":"AAAAAAAAAAM=","deviceEtag":"NjI2NTkyMzg4","status":"enabled","statusUpdateTime":"0001-01-01T00:00:00Z",` +
				`"connectionState":"Connected","lastActivityTime":"2024-05-15T15:00:56.8408487Z","cloudToDeviceMessageCount":3,` +
				`"authenticationType":"sas","x509Thumbprint":{"primaryThumbprint":null,"secondaryThumbprint":null},"modelId":"","version":5,` +
				`"tags":{"a":{"c":"x"},"b":1},` +
				`"properties":{"desired":{"arr":[1],"one":{"two":2},"$metadata":{"$lastUpdated":"2024-05-15T15:00:54.8408487Z","$lastUpdatedVersion":2,` +
				`"arr":{"$lastUpdated":"2024-05-15T15:00:54.8408487Z","$lastUpdatedVersion":2},` +
				`"one":{"$lastUpdated":"2024-05-15T15:00:54.8408487Z","$lastUpdatedVersion":2,"two":{"$lastUpdated":"2024-05-15T15:00:54.8408487Z","$lastUpdatedVersion":2}}},"$version":2},` +
				`"reported":{"r":"v","$metadata":{"$lastUpdated":"2024-05-15T15:00:55.8408487Z","r":{"$lastUpdated":"2024-05-15T15:00:55.8408487Z"}},"$version":2}},` +
				`"capabilities":{"iotEdge":false}}`,
		},
		{
			name: "module twin, identity set",
			twin: func(*testing.T) *Twin { return New(t0) },
			id: Identity{DeviceID: "d1", ModuleID: "m1", DeviceEtag: "x", Status: "disabled", StatusUpdateTime: time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC),
				ConnectionState: "Connected", AuthenticationType: "selfSigned"},
			want: `{"deviceId":"d1","moduleId":"m1","etag":"AAAAAAAAAAE=","deviceEtag":"x","status":"disabled","statusUpdateTime":"2025-01-02T03:04:05.0000000Z",` +
				`"connectionState":"Connected","lastActivityTime":"0001-01-01T00:00:00Z","cloudToDeviceMessageCount":0,` +
				`"authenticationType":"selfSigned","x509Thumbprint":{"primaryThumbprint":null,"secondaryThumbprint":null},"modelId":"","version":2,` +
				`"properties":{"desired":{"$metadata":{"$lastUpdated":"2024-05-15T15:00:53.8408487Z","$lastUpdatedVersion":1},"$version":1},` +
				`"reported":{"$metadata":{"$lastUpdated":"2024-05-15T15:00:53.8408487Z"},"$version":1}}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(tt.twin(t).Document(tt.id))
			if got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
			if !json.Valid([]byte(got)) {
				t.Errorf("got invalid JSON %s", got)
			}
		})
	}
}

// metadata is one node of a document's $metadata.
type metadata struct {
	LastUpdated        string `json:"$lastUpdated"`
	LastUpdatedVersion *int64 `json:"$lastUpdatedVersion"`
}

// metadataAt returns the $metadata node at the dotted path (below section)
// of tw's document.
func metadataAt(t *testing.T, tw *Twin, section, dotted string) (metadata, bool) {
	t.Helper()
	var doc struct {
		Properties map[string]map[string]json.RawMessage
	}
	if err := json.Unmarshal(tw.Document(Identity{DeviceID: "d"}), &doc); err != nil {
		t.Fatalf("document: %v", err)
	}
	raw := doc.Properties[section]["$metadata"]
	if dotted != "" {
		for k := range strings.SplitSeq(dotted, ".") {
			var m map[string]json.RawMessage
			if err := json.Unmarshal(raw, &m); err != nil {
				t.Fatalf("metadata %s: %v", dotted, err)
			}
			if raw = m[k]; raw == nil {
				return metadata{}, false
			}
		}
	}
	var m metadata
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("metadata %s: %v", dotted, err)
	}
	return m, true
}

// TestMetadata: each write stamps the nodes it writes and their ancestors,
// up to the section, and nothing else (§1.7).
func TestMetadata(t *testing.T) {
	tw := New(t0)
	mustUpdate(t, tw, `{"properties":{"desired":{"a":{"b":1,"c":{"d":2}},"x":1}}}`, false, at(1)) // version 2
	mustUpdate(t, tw, `{"properties":{"desired":{"a":{"c":{"d":5}}}}}`, false, at(2))             // version 3
	mustUpdate(t, tw, `{"properties":{"desired":{"a":{"b":null}}}}`, false, at(3))                // version 4
	mustUpdate(t, tw, `{"tags":{"t":1}}`, false, at(4))                                           // desired untouched
	mustPatch(t, tw, `{"r":{"s":{"u":1}},"v":1}`, at(5))
	mustPatch(t, tw, `{"r":{"s":{"w":null}}}`, at(6))
	f := func(n int) string { return formatTime(at(n)) }
	tests := []struct {
		section, path string
		wantTime      string
		wantVersion   int64 // 0: no $lastUpdatedVersion
		wantAbsent    bool
	}{
		{"desired", "", f(3), 4, false},
		{"desired", "a", f(3), 4, false},
		{"desired", "a.b", "", 0, true},
		{"desired", "a.c", f(2), 3, false},
		{"desired", "a.c.d", f(2), 3, false},
		{"desired", "x", f(1), 2, false},
		{"reported", "", f(6), 0, false},
		{"reported", "r", f(6), 0, false},
		{"reported", "r.s", f(6), 0, false},
		{"reported", "r.s.u", f(5), 0, false},
		{"reported", "v", f(5), 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.section+"."+tt.path, func(t *testing.T) {
			m, ok := metadataAt(t, tw, tt.section, tt.path)
			if ok == tt.wantAbsent {
				t.Fatalf("got present %v, want %v", ok, !tt.wantAbsent)
			}
			if !ok {
				return
			}
			if m.LastUpdated != tt.wantTime {
				t.Errorf("got $lastUpdated %s, want %s", m.LastUpdated, tt.wantTime)
			}
			switch {
			case tt.wantVersion == 0 && m.LastUpdatedVersion != nil:
				t.Errorf("got $lastUpdatedVersion %d, want none", *m.LastUpdatedVersion)
			case tt.wantVersion != 0 && (m.LastUpdatedVersion == nil || *m.LastUpdatedVersion != tt.wantVersion):
				t.Errorf("got $lastUpdatedVersion %v, want %d", m.LastUpdatedVersion, tt.wantVersion)
			}
		})
	}
}

// TestFormatTime: 7 fractional digits, UTC, truncated not rounded.
func TestFormatTime(t *testing.T) {
	tests := []struct {
		in   time.Time
		want string
	}{
		{time.Time{}, "0001-01-01T00:00:00Z"},
		{time.Date(2024, 5, 15, 15, 0, 53, 840848799, time.UTC), "2024-05-15T15:00:53.8408487Z"},
		{time.Date(2024, 5, 15, 17, 0, 53, 0, time.FixedZone("", 7200)), "2024-05-15T15:00:53.0000000Z"},
	}
	for _, tt := range tests {
		if got := formatTime(tt.in); got != tt.want {
			t.Errorf("formatTime(%v): got %s, want %s", tt.in, got, tt.want)
		}
	}
}
