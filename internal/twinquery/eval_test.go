package twinquery

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"
)

// loadDoc decodes a testdata JSON object as the hub does (UseNumber).
func loadDoc(t testing.TB, name string) map[string]any {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

// matchCase is a WHERE body and whether it matches the document.
type matchCase struct {
	cond string
	want bool
}

func runMatches(t *testing.T, from, docFile string, tests []matchCase) {
	t.Helper()
	doc := loadDoc(t, docFile)
	for _, tt := range tests {
		t.Run(tt.cond, func(t *testing.T) {
			q, err := Parse("SELECT * FROM " + from + " WHERE " + tt.cond)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := q.Where().Match(doc); got != tt.want {
				t.Errorf("Match = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestMatchComparisons(t *testing.T) {
	runMatches(t, "devices", "twin.json", []matchCase{
		{"deviceId = 'Device_1'", true},
		{"deviceId = 'device_1'", false}, // values are case-sensitive
		{"DeviceId = 'Device_1'", true},  // root names are not
		{"DEVICEID = \"Device_1\"", true},
		{"STATUS = 'enabled' AND ConnectionState = 'Connected'", true},
		{"Tags.site = 'plant-a'", true},
		{"tags.Site = 'plant-a'", false}, // below the root: case-sensitive
		{"properties.Desired.$version = 4", false},
		{"deviceId != 'x'", true},
		{"deviceId <> 'Device_1'", false},
		{"tags.site < 'plant-b'", true},
		{"tags.site > 'plant-b'", false},
		{"tags.site <= 'plant-a'", true},
		{"tags.site >= 'plant-a'", true},
		{"'plant-a' = tags.site", true},
		{"lastActivityTime > '2024-05-15T00:00:00Z'", true},
		{"version = 36", true},
		{"version = 36.0", true},
		{"version = 3.6e1", true},
		{"version = 0x24", true},
		{"version != 36", false},
		{"version < 37 AND version > 35", true},
		{"version <= 36 AND version >= 36", true},
		{"version < 36", false},
		{"tags.ratio = 0.25", true},
		{"tags.ratio < 1", true},
		{"tags.loc.lon = -122.3", true},
		{"tags.loc.lon < -100", true},
		{"tags.big = 9007199254740993", true}, // 2^53+1: exact
		{"tags.big = 9007199254740992", false},
		{"cloudToDeviceMessageCount = 0", true},
		{"cloudToDeviceMessageCount = -0", true},
		{"properties.desired.ProductionRate = 1096722042", true},
		{"properties.reported.ProductionRate >= 100", true},
		{"properties.desired.$version = 4", true},
		{"properties.reported.$version = 32", true},
		{"properties.reported.$metadata.ProductionRate.$lastUpdated = '2024-05-15T15:00:55.0893144Z'", true},
		{"properties.reported.methodd.lastReload.ok = true", true},
		{"properties.reported.methodd.lastReload.ok", true},
		{"properties.reported.methodd.lastReload.ok != false", true},
		{"capabilities.iotEdge = false", true},
		{"capabilities.iotEdge", false},
		{"tags.gw = TRUE", true},
		{"tags.gw < true", false}, // booleans: = and != only
		{"tags.owner = null", true},
		{"tags.owner != null", false},
		{"tags.owner < null", false},
		{"properties.reported.ErrorStatus = ''", true},
		{"modelId = ''", true},
	})
}

func TestMatchLogic(t *testing.T) {
	runMatches(t, "devices", "twin.json", []matchCase{
		{"deviceId = 'Device_1' AND tags.site = 'plant-a'", true},
		{"deviceId = 'Device_1' AND tags.site = 'x'", false},
		{"deviceId = 'x' OR tags.site = 'plant-a'", true},
		{"deviceId = 'x' OR tags.site = 'y'", false},
		{"NOT deviceId = 'x'", true},
		{"NOT (deviceId = 'Device_1')", false},
		{"NOT NOT deviceId = 'Device_1'", true},
		{"deviceId = 'x' OR deviceId = 'y' OR version = 36", true},
		{"version = 36 AND status = 'enabled' AND tags.floor = 3", true},
		{"deviceId = 'x' AND tags.site = 'plant-a' OR version = 36", true},    // AND before OR
		{"deviceId = 'x' AND (tags.site = 'plant-a' OR version = 36)", false}, // parens
		{"NOT deviceId = 'x' AND version = 36", true},                         // NOT before AND
		{"NOT (deviceId = 'Device_1' AND version = 1)", true},
		{"(version = 36) = true", true},
		{"true", true},
		{"false", false},
		{"NOT false", true},
		{"'x'", false},
		{"1", false},
		{"null", false},
	})
}

func TestMatchIn(t *testing.T) {
	runMatches(t, "devices", "twin.json", []matchCase{
		{"deviceId IN ['a', 'Device_1']", true},
		{"deviceId IN ['a', 'b']", false},
		{"deviceId NIN ['a', 'b']", true},
		{"deviceId NIN ['Device_1']", false},
		{"deviceId IN []", false},
		{"deviceId NIN []", true},
		{"version IN [1, 36.0, 'x']", true},
		{"version IN ['36']", false}, // no conversions
		{"tags.owner IN [null]", true},
		{"tags.gw in [false, true]", true},
		{"tags.missing IN ['a']", false},
		{"tags.missing NIN ['a']", false}, // undefined
		{"tags.zones IN ['a']", false},    // arrays are not primitives
		{"tags.zones NIN ['a']", false},
		{"NOT tags.missing IN ['a']", false},
	})
}

func TestMatchUndefined(t *testing.T) {
	runMatches(t, "devices", "twin.json", []matchCase{
		{"tags.missing = 'a'", false},
		{"tags.missing != 'a'", false},
		{"NOT tags.missing = 'a'", false}, // undefined propagates through NOT
		{"NOT (tags.missing != 'a')", false},
		{"tags.missing = 'a' OR version = 36", true}, // undefined OR true
		{"tags.missing = 'a' OR version = 1", false}, // undefined OR false
		{"NOT (tags.missing = 'a' OR version = 1)", false},
		{"tags.missing = 'a' AND version = 1", false},
		{"NOT (tags.missing = 'a' AND version = 1)", true}, // undefined AND false is false
		{"tags.site.deeper = 'a'", false},                  // through a string
		{"properties.reported.methodd.lastReload.ok.x = true", false},
		{"version = '36'", false}, // kinds differ
		{"version != '36'", false},
		{"NOT version = '36'", false},
		{"tags.loc = 'x'", false}, // objects never compare
		{"tags.loc != 'x'", false},
		{"tags.zones = tags.zones", false},
		{"tags.missing = undefined", false},
		{"tags.missing = tags.missing", false},
		{"x509Thumbprint.primaryThumbprint = null", true},
		{"IS_DEFINED(tags.site)", true},
		{"IS_DEFINED(tags.owner)", true}, // null is defined
		{"IS_DEFINED(tags.missing)", false},
		{"NOT IS_DEFINED(tags.missing)", true},
		{"IS_DEFINED(DeviceId)", true},
		{"is_defined(properties.desired.$metadata.$lastUpdated)", true},
		{"IS_DEFINED(tags.site.x)", false},
		{"IS_DEFINED(tags.missing) = false", true},
	})
}

func TestMatchJobRecords(t *testing.T) {
	runMatches(t, "devices.jobs", "jobrecord.json", []matchCase{
		{"devices.jobs.jobId = 'myJobId'", true},
		{"devices.jobs.jobId = 'other'", false},
		{"devices.jobs.JobId = 'myJobId'", true},
		{"DEVICES.JOBS.deviceId = 'myDeviceId'", true},
		{"devices.jobs.jobId = 'myJobId' AND devices.jobs.status = 'completed'", true},
		{"devices.jobs.jobType = 'scheduleUpdateTwin'", false},
		{"devices.jobs.outcome.deviceMethodResponse.status = 200", true},
		{"devices.jobs.createdDateTimeUtc > '2016-01-01'", true},
		{"IS_DEFINED(devices.jobs.error)", false},
		{"devices.jobs.status IN ['failed', 'canceled']", false},
	})
}

func TestMatchModules(t *testing.T) {
	doc := map[string]any{"deviceId": "d", "moduleId": "m", "tags": map[string]any{"x": "y"}}
	for _, cond := range []string{"moduleId = 'm'", "devices.modules.moduleId = 'm'", "ModuleId = 'm' AND tags.x = 'y'"} {
		q, err := Parse("SELECT * FROM devices.modules WHERE " + cond)
		if err != nil {
			t.Fatalf("%s: %v", cond, err)
		}
		if !q.Where().Match(doc) {
			t.Errorf("%s: Match = false, want true", cond)
		}
	}
}

func TestMatchGoNumbers(t *testing.T) {
	c, err := ParseCondition("a = 1 AND b = 2.5 AND c < 0 AND d = 7 AND e = 9")
	if err != nil {
		t.Fatal(err)
	}
	doc := map[string]any{"a": 1, "b": 2.5, "c": int64(-3), "d": float32(7), "e": uint64(9)}
	if !c.Match(doc) {
		t.Error("Go numeric types do not match")
	}
	bad := map[string]any{"a": struct{}{}, "b": json.Number("x"), "c": 0.0, "d": 7, "e": 9}
	if c.Match(bad) {
		t.Error("unreadable numbers match")
	}
}

func TestMatchNilCondition(t *testing.T) {
	var c *Condition
	if !c.Match(nil) {
		t.Error("nil Condition does not match")
	}
	q, err := Parse("SELECT * FROM devices")
	if err != nil {
		t.Fatal(err)
	}
	if q.Where() != nil || !q.Where().Match(map[string]any{"a": 1}) {
		t.Error("a query without WHERE does not match everything")
	}
}

func BenchmarkMatch(b *testing.B) {
	doc := loadDoc(b, "twin.json")
	c, err := ParseCondition("tags.site = 'plant-a' AND properties.reported.ProductionRate >= 100 AND deviceId IN ['a','Device_1']")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if !c.Match(doc) {
			b.Fatal("no match")
		}
	}
}
