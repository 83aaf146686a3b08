package twindoc

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/methodd/methodd/iothub"
)

// t0 is the creation time of the twins under test; its nanoseconds show
// that documents truncate to 7 digits and the state keeps all 9.
var t0 = time.Date(2024, 5, 15, 15, 0, 53, 840848712, time.UTC)

// at is t0 plus n seconds.
func at(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }

// state is the MarshalJSON of tw.
func state(t testing.TB, tw *Twin) string {
	t.Helper()
	b, err := tw.MarshalJSON()
	if err != nil {
		t.Fatalf("MarshalJSON: %v", err)
	}
	return string(b)
}

func mustPatch(t testing.TB, tw *Twin, patch string, now time.Time) int64 {
	t.Helper()
	v, err := tw.PatchReported([]byte(patch), now)
	if err != nil {
		t.Fatalf("PatchReported(%s): %v", patch, err)
	}
	return v
}

func mustUpdate(t testing.TB, tw *Twin, body string, replace bool, now time.Time) Change {
	t.Helper()
	c, err := tw.Update([]byte(body), replace, now)
	if err != nil {
		t.Fatalf("Update(%s, %v): %v", body, replace, err)
	}
	return c
}

// sections returns the desired and reported objects of DeviceJSON.
func sections(t *testing.T, tw *Twin) (desired, reported string) {
	t.Helper()
	var doc struct{ Desired, Reported json.RawMessage }
	if err := json.Unmarshal(tw.DeviceJSON(), &doc); err != nil {
		t.Fatalf("DeviceJSON %s: %v", tw.DeviceJSON(), err)
	}
	return string(doc.Desired), string(doc.Reported)
}

// wantInvalid fails unless err is an *iothub.Error with code 400004 whose
// message contains msg.
func wantInvalid(t *testing.T, err error, msg string) {
	t.Helper()
	var e *iothub.Error
	if !errors.As(err, &e) {
		t.Fatalf("got error %v (%T), want *iothub.Error", err, err)
	}
	if e.Code != iothub.CodeArgumentInvalid || e.HTTPStatus != 400 {
		t.Errorf("got code %d status %d, want 400004 and 400", e.Code, e.HTTPStatus)
	}
	if !strings.Contains(e.Message, msg) {
		t.Errorf("got message %q, want it to contain %q", e.Message, msg)
	}
	if len(e.Message) > 400 {
		t.Errorf("got a %d-byte message, want a short one", len(e.Message))
	}
}

// TestVectors checks the byte-exact twin vectors TV-T1..TV-T3 (§7.2) and the
// etag encoding of §7.3.
func TestVectors(t *testing.T) {
	tw := New(t0)
	if got, want := string(tw.DeviceJSON()), `{"desired":{"$version":1},"reported":{"$version":1}}`; got != want {
		t.Errorf("TV-T1: got DeviceJSON %s, want %s", got, want)
	}
	if got, want := tw.ETag(), "AAAAAAAAAAE="; got != want {
		t.Errorf("new twin: got etag %s, want %s", got, want)
	}
	if got, want := tw.Version(), int64(2); got != want {
		t.Errorf("new twin: got version %d, want %d", got, want)
	}
	if got := mustPatch(t, tw, `{"firmware":{"version":"1.2.3"},"battery":55,"old":null}`, at(1)); got != 2 {
		t.Errorf("TV-T2: got reported $version %d, want 2", got)
	}
	c := mustUpdate(t, tw, `{"properties":{"desired":{"telemetryInterval":30,"route":null}}}`, false, at(2))
	if got, want := string(c.Desired), `{"telemetryInterval":30,"route":null,"$version":2}`; got != want {
		t.Errorf("TV-T3: got Change.Desired %s, want %s", got, want)
	}
	if c.DesiredVersion != 2 {
		t.Errorf("TV-T3: got DesiredVersion %d, want 2", c.DesiredVersion)
	}
	want := `{"desired":{"telemetryInterval":30,"$version":2},"reported":{"battery":55,"firmware":{"version":"1.2.3"},"$version":2}}`
	if got := string(tw.DeviceJSON()); got != want {
		t.Errorf("after TV-T3: got DeviceJSON %s, want %s", got, want)
	}
}

// TestPatchOrderPreserved: Change.Desired keeps the member order of the
// patch as sent at every level, and the exact text of numbers.
func TestPatchOrderPreserved(t *testing.T) {
	tw := New(t0)
	c := mustUpdate(t, tw, `{"properties":{"desired":{"z":{"y":1.50,"b":null,"a":[3,{"k":1e3}]},"m":"<&>","$version":9}}}`, false, at(1))
	if got, want := string(c.Desired), `{"z":{"y":1.50,"b":null,"a":[3,{"k":1e3}]},"m":"<&>","$version":2}`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

// TestETagAndVersion checks the arithmetic of §2.2/§7.3 against the real
// twins it was inferred from and a mixed history.
func TestETagAndVersion(t *testing.T) {
	tests := []struct {
		name                       string
		tags, desired, reported    int
		wantETag                   string
		wantVersion, wantDesired   int64
		wantReported, wantTagWrite int64
	}{
		{"new twin", 0, 0, 0, "AAAAAAAAAAE=", 2, 1, 1, 0},
		// §2.2's portal twin: desired 4, reported 32, no tags: etag 4, version 36.
		{"portal twin", 0, 3, 31, "AAAAAAAAAAQ=", 36, 4, 32, 0},
		// §2.2's Java-issue twin: desired 4, reported empty, tags once: etag 5, version 6.
		{"java twin", 1, 3, 0, "AAAAAAAAAAU=", 6, 4, 1, 1},
		// 1 tags PATCH, 3 desired PATCHes, 32 reported patches:
		// desired 1+3 = 4, reported 1+32 = 33, tag writes 1;
		// etag = 4+1 = 5, version = 4+33+1 = 38.
		{"mixed history", 1, 3, 32, "AAAAAAAAAAU=", 38, 4, 33, 1},
		{"tags only", 6, 0, 0, "AAAAAAAAAAc=", 8, 1, 1, 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tw := New(t0)
			for i := range tt.tags {
				mustUpdate(t, tw, `{"tags":{"n":`+itoa(i)+`}}`, false, at(i))
			}
			for i := range tt.desired {
				mustUpdate(t, tw, `{"properties":{"desired":{"n":`+itoa(i)+`}}}`, false, at(i))
			}
			for i := range tt.reported {
				mustPatch(t, tw, `{"n":`+itoa(i)+`}`, at(i))
			}
			if got := tw.ETag(); got != tt.wantETag {
				t.Errorf("got etag %s, want %s", got, tt.wantETag)
			}
			if got := tw.Version(); got != tt.wantVersion {
				t.Errorf("got version %d, want %d", got, tt.wantVersion)
			}
			if tw.desiredVersion != tt.wantDesired || tw.reportedVersion != tt.wantReported || tw.tagWrites != tt.wantTagWrite {
				t.Errorf("got desired %d reported %d tag writes %d, want %d %d %d",
					tw.desiredVersion, tw.reportedVersion, tw.tagWrites, tt.wantDesired, tt.wantReported, tt.wantTagWrite)
			}
		})
	}
}

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}

// TestMergeReported checks the merge-patch rules of §1.3 step by step.
func TestMergeReported(t *testing.T) {
	steps := []struct {
		name, patch, want string
	}{
		{"initial", `{"a":{"b":1,"c":2},"d":[1,2],"e":"x"}`,
			`{"a":{"b":1,"c":2},"d":[1,2],"e":"x","$version":2}`},
		{"null deletes, objects merge, arrays replace", `{"a":{"b":null,"f":{"g":true}},"d":[3],"e":null,"missing":null}`,
			`{"a":{"c":2,"f":{"g":true}},"d":[3],"$version":3}`},
		{"empty patch still counts", `{}`,
			`{"a":{"c":2,"f":{"g":true}},"d":[3],"$version":4}`},
		{"scalar replaces object", `{"a":5}`,
			`{"a":5,"d":[3],"$version":5}`},
		{"object replaces scalar and array", `{"a":{"x":1},"d":{"y":null}}`,
			`{"a":{"x":1},"d":{},"$version":6}`},
		{"nulls inside arrays are values", `{"arr":[null,{"k":null},[]]}`,
			`{"a":{"x":1},"arr":[null,{"k":null},[]],"d":{},"$version":7}`},
		{"exact number text", `{"n":1.50,"m":-0,"big":1e400,"i":4503599627370495}`,
			`{"a":{"x":1},"arr":[null,{"k":null},[]],"big":1e400,"d":{},"i":4503599627370495,"m":-0,"n":1.50,"$version":8}`},
		{"delete everything", `{"a":null,"arr":null,"big":null,"d":null,"i":null,"m":null,"n":null}`,
			`{"$version":9}`},
		{"strings are not HTML-escaped", `{"s":"<a&b>\"\\\n\u0001\u2028é"}`,
			`{"s":"<a&b>\"\\\n\u0001` + "\u2028é" + `","$version":10}`},
	}
	tw := New(t0)
	for i, s := range steps {
		v := mustPatch(t, tw, s.patch, at(i))
		if v != int64(i+2) {
			t.Errorf("%s: got version %d, want %d", s.name, v, i+2)
		}
		if _, got := sections(t, tw); got != s.want {
			t.Errorf("%s: got reported %s, want %s", s.name, got, s.want)
		}
	}
}

// TestUpdatePatch checks PATCH semantics for tags and desired (§2.3).
func TestUpdatePatch(t *testing.T) {
	tw := New(t0)
	mustUpdate(t, tw, `{"tags":{"site":"a","loc":{"x":1,"y":2}},"properties":{"desired":{"p":{"q":1,"r":2},"s":1}}}`, false, at(1))
	c := mustUpdate(t, tw, `{"tags":{"loc":{"x":null},"new":true},"properties":{"desired":{"p":{"q":null},"s":null}}}`, false, at(2))
	if got, want := string(c.Desired), `{"p":{"q":null},"s":null,"$version":3}`; got != want {
		t.Errorf("got Change.Desired %s, want %s", got, want)
	}
	if got, want := string(appendNode(nil, tw.tags)), `{"loc":{"y":2},"new":true,"site":"a"}`; got != want {
		t.Errorf("got tags %s, want %s", got, want)
	}
	if got, _ := sections(t, tw); got != `{"p":{"r":2},"$version":3}` {
		t.Errorf("got desired %s, want %s", got, `{"p":{"r":2},"$version":3}`)
	}
	if tw.tagWrites != 2 {
		t.Errorf("got %d tag writes, want 2", tw.tagWrites)
	}
}

// TestUpdateNoWrite: bodies that write neither part change nothing.
func TestUpdateNoWrite(t *testing.T) {
	for _, body := range []string{
		`{}`,
		`{"properties":{}}`,
		`{"properties":{"reported":{"x":1}}}`,
		`{"deviceId":"d","etag":"AAAAAAAAAAE=","version":7,"status":"disabled","capabilities":{"iotEdge":true}}`,
	} {
		t.Run(body, func(t *testing.T) {
			tw := New(t0)
			mustPatch(t, tw, `{"r":1}`, at(1))
			before := state(t, tw)
			c := mustUpdate(t, tw, body, false, at(2))
			if c.Desired != nil || c.DesiredVersion != 1 {
				t.Errorf("got change %s/%d, want nil/1", c.Desired, c.DesiredVersion)
			}
			if got := state(t, tw); got != before {
				t.Errorf("got state %s, want %s", got, before)
			}
		})
	}
}

// TestTagWrites: every write with "tags" counts, even an empty one, and
// tags appear in the document once written.
func TestTagWrites(t *testing.T) {
	tw := New(t0)
	if bytes.Contains(tw.Document(Identity{DeviceID: "d"}), []byte(`"tags"`)) {
		t.Errorf("got tags in a new twin's document, want none")
	}
	mustUpdate(t, tw, `{"tags":{}}`, false, at(1))
	mustUpdate(t, tw, `{"tags":{"a":null}}`, false, at(2))
	if tw.tagWrites != 2 || tw.ETag() != "AAAAAAAAAAM=" || tw.Version() != 4 {
		t.Errorf("got tag writes %d etag %s version %d, want 2 AAAAAAAAAAM= 4", tw.tagWrites, tw.ETag(), tw.Version())
	}
	if !bytes.Contains(tw.Document(Identity{DeviceID: "d"}), []byte(`"tags":{},"properties"`)) {
		t.Errorf("got document %s, want empty tags before properties", tw.Document(Identity{DeviceID: "d"}))
	}
}

// TestUpdateReplace checks PUT semantics: wholesale replacement, nulls
// mean absent, untouched parts stay.
func TestUpdateReplace(t *testing.T) {
	tw := New(t0)
	mustUpdate(t, tw, `{"tags":{"a":1,"b":{"c":2}},"properties":{"desired":{"a":1,"b":{"c":2}}}}`, false, at(1))
	c := mustUpdate(t, tw, `{"properties":{"desired":{"b":{"d":3,"e":null},"n":null,"arr":[null],"$metadata":{},"$version":1}}}`, true, at(2))
	if got, want := string(c.Desired), `{"b":{"d":3},"arr":[null],"$version":3}`; got != want {
		t.Errorf("got Change.Desired %s, want %s", got, want)
	}
	if got, _ := sections(t, tw); got != `{"arr":[null],"b":{"d":3},"$version":3}` {
		t.Errorf("got desired %s, want %s", got, `{"arr":[null],"b":{"d":3},"$version":3}`)
	}
	if got, want := string(appendNode(nil, tw.tags)), `{"a":1,"b":{"c":2}}`; got != want {
		t.Errorf("PUT without tags: got tags %s, want %s", got, want)
	}
	for _, n := range []*node{tw.desired, tw.desired.members["b"], tw.desired.members["b"].members["d"], tw.desired.members["arr"]} {
		if !n.meta.at.Equal(at(2)) || n.meta.version != 3 {
			t.Errorf("got metadata %v/%d, want %v/3", n.meta.at, n.meta.version, at(2))
		}
	}
	c = mustUpdate(t, tw, `{"tags":{"z":{"y":null}}}`, true, at(3))
	if c.Desired != nil || c.DesiredVersion != 3 {
		t.Errorf("PUT of tags only: got change %s/%d, want nil/3", c.Desired, c.DesiredVersion)
	}
	if got, want := string(appendNode(nil, tw.tags)), `{"z":{}}`; got != want {
		t.Errorf("got tags %s, want %s", got, want)
	}
	if tw.tagWrites != 2 {
		t.Errorf("got %d tag writes, want 2", tw.tagWrites)
	}
	c = mustUpdate(t, tw, `{"properties":{"desired":{}}}`, true, at(4))
	if got, want := string(c.Desired), `{"$version":4}`; got != want {
		t.Errorf("PUT of empty desired: got %s, want %s", got, want)
	}
}

// TestDocumentWriteBack: a document read from the service, fed back as a
// PUT or a PATCH, succeeds and leaves desired and tags as they were.
func TestDocumentWriteBack(t *testing.T) {
	for _, replace := range []bool{true, false} {
		tw := New(t0)
		mustUpdate(t, tw, `{"tags":{"site":"<&>","nest":{"a":[1,{"b":null}]}},"properties":{"desired":{"one":{"two":{"three":1.50}},"s":"\u2028\"x","e":{}}}}`, false, at(1))
		mustPatch(t, tw, `{"r":{"x":true}}`, at(2))
		beforeDesired, _ := sections(t, tw)
		beforeTags := string(appendNode(nil, tw.tags))
		doc := tw.Document(Identity{DeviceID: "d", ModuleID: "m", StatusUpdateTime: at(3)})
		c := mustUpdate(t, tw, string(doc), replace, at(4))
		afterDesired, _ := sections(t, tw)
		if want := strings.Replace(beforeDesired, `"$version":2`, `"$version":3`, 1); afterDesired != want {
			t.Errorf("replace %v: got desired %s, want %s", replace, afterDesired, want)
		}
		if got := string(appendNode(nil, tw.tags)); got != beforeTags {
			t.Errorf("replace %v: got tags %s, want %s", replace, got, beforeTags)
		}
		if c.DesiredVersion != 3 || !json.Valid(c.Desired) {
			t.Errorf("replace %v: got change %s/%d, want valid JSON at 3", replace, c.Desired, c.DesiredVersion)
		}
	}
}
