package iothub

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

const tvScope = "0ne00000001" // fleet reference §7

// TestDeriveDeviceKeyVectors reproduces TV-D1.
func TestDeriveDeviceKeyVectors(t *testing.T) {
	for reg, want := range map[string]string{
		"dev-01":    "bjL5pGAzpMSXSbKyFlMNKcaL6ef5Hp/WAADRbdSnTBs=",
		"sensor-42": "XIYy11w3evL3tqnJw4HbuameQZ+R4OMMV4DYEu904Ug=",
	} {
		got, err := DeriveDeviceKey(nodeKey, reg)
		if err != nil || got != want {
			t.Errorf("DeriveDeviceKey(%s) = %q, %v; want %q", reg, got, err, want)
		}
	}
	if _, err := DeriveDeviceKey("not base64!", "dev-01"); err == nil {
		t.Error("DeriveDeviceKey accepted a key that is not base64")
	}
}

// TestSignDPSVectors reproduces TV-D2 (individual and group-derived keys)
// and TV-D5 (the hub token made with the derived key).
func TestSignDPSVectors(t *testing.T) {
	derived, err := DeriveDeviceKey(nodeKey, "dev-01")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ key, want string }{
		{nodeKey, "SharedAccessSignature sr=0ne00000001/registrations/dev-01&sig=J0Zmb7xRZMB3TAXNZwo7oByKSLJalDHOmD4vTiqhr8M%3D&skn=registration&se=2000000000"},
		{derived, "SharedAccessSignature sr=0ne00000001/registrations/dev-01&sig=%2FfCXMZEFascbS90GLlpk7jI3bx4QuFllV9XkOjhnbXw%3D&skn=registration&se=2000000000"},
	} {
		got, err := SignDPS(tvScope, "dev-01", tt.key, nodeExpiry)
		if err != nil || got != tt.want {
			t.Errorf("SignDPS = %q, %v\nwant      %q", got, err, tt.want)
		}
	}
	hub, err := Sign("hub.example/devices/dev-01", derived, "", nodeExpiry)
	want := "SharedAccessSignature sr=hub.example%2Fdevices%2Fdev-01&sig=shwZAjXKRx0%2B5ly167%2FINQiBLRw7MVf0zCJ4uh8tTJ4%3D&se=2000000000"
	if err != nil || hub != want {
		t.Errorf("TV-D5: %q, %v; want %q", hub, err, want)
	}
}

// TestDPSTokensVerify: both SDK forms of §5.2 (TV-D2 Node, TV-D3 Python)
// verify with the key and name the same resource.
func TestDPSTokensVerify(t *testing.T) {
	for _, tok := range []string{
		"SharedAccessSignature sr=0ne00000001/registrations/dev-01&sig=J0Zmb7xRZMB3TAXNZwo7oByKSLJalDHOmD4vTiqhr8M%3D&skn=registration&se=2000000000",
		"SharedAccessSignature sr=0ne00000001%2Fregistrations%2Fdev-01&sig=SvjqZ5fqAVJqMvV1lFIY6JQgYK%2FO2VF2QsmsL0ZKxf4%3D&se=2000000000",
	} {
		s, err := ParseSAS(tok)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Verify(nodeKey, time.Unix(1999999999, 0)); err != nil {
			t.Errorf("%s: %v", tok, err)
		}
		if err := s.Verify(tvKey, time.Unix(1999999999, 0)); !errors.Is(err, ErrSASSignature) {
			t.Errorf("%s verified with the wrong key: %v", tok, err)
		}
		if r, err := s.Resource(); err != nil || r != DPSResource(tvScope, "dev-01") {
			t.Errorf("resource %q, %v", r, err)
		}
	}
}

// TestDPSStrings reproduces TV-D4 and round-trips every topic.
func TestDPSStrings(t *testing.T) {
	u := DPSUsername(tvScope, "dev-01", "azure-iot-provisioning-device/1.9.1")
	if want := "0ne00000001/registrations/dev-01/api-version=2019-03-31&ClientVersion=azure-iot-provisioning-device%2F1.9.1"; u != want {
		t.Errorf("username %q, want %q", u, want)
	}
	for _, s := range []string{u, "0ne00000001/registrations/dev-01/?api-version=2019-03-31"} {
		scope, reg, err := ParseDPSUsername(s)
		if err != nil || scope != tvScope || reg != "dev-01" {
			t.Errorf("ParseDPSUsername(%q) = %q, %q, %v", s, scope, reg, err)
		}
	}
	for _, bad := range []string{"", "0ne00000001/registrations/dev-01", "0ne00000001/registrations//api-version=1", "x/dev-01/api-version=1", "/registrations/d/api-version=1"} {
		if _, _, err := ParseDPSUsername(bad); !errors.Is(err, ErrDPSTopic) {
			t.Errorf("ParseDPSUsername(%q) = %v, want ErrDPSTopic", bad, err)
		}
	}
	if got := DPSRegisterTopic("bc6b"); got != "$dps/registrations/PUT/iotdps-register/?$rid=bc6b" {
		t.Errorf("register topic %q", got)
	}
	const opID = "4.65f62b2644c85bb1.331ffb1b-35e2-4b5a-9e68-f1fa7d5efc33"
	poll := DPSPollTopic("f97c", opID)
	if want := "$dps/registrations/GET/iotdps-get-operationstatus/?$rid=f97c&operationId=" + opID; poll != want {
		t.Errorf("poll topic %q", poll)
	}
	if op, rid, id, err := ParseDPSRequestTopic(poll); err != nil || op != DPSPoll || rid != "f97c" || id != opID {
		t.Errorf("ParseDPSRequestTopic(poll) = %v %q %q %v", op, rid, id, err)
	}
	if op, rid, _, err := ParseDPSRequestTopic(DPSRegisterTopic("1")); err != nil || op != DPSRegister || rid != "1" {
		t.Errorf("ParseDPSRequestTopic(register) = %v %q %v", op, rid, err)
	}
	for _, bad := range []string{"$dps/registrations/GET/iotdps-get-operationstatus/?$rid=1", "$dps/registrations/PUT/iotdps-register/", "$dps/registrations/PUT/iotdps-register/?x=1", "$iothub/twin/GET/?$rid=1"} {
		if _, _, _, err := ParseDPSRequestTopic(bad); !errors.Is(err, ErrDPSTopic) {
			t.Errorf("ParseDPSRequestTopic(%q) = %v", bad, err)
		}
	}
	if got := DPSResponseTopic(202, "bc6b", 3*time.Second); got != "$dps/registrations/res/202/?$rid=bc6b&retry-after=3" {
		t.Errorf("response topic %q", got)
	}
	if got := DPSResponseTopic(200, "d339", 0); got != "$dps/registrations/res/200/?$rid=d339" {
		t.Errorf("response topic %q", got)
	}
	st, rid, ra, err := ParseDPSResponseTopic("$dps/registrations/res/202/?$rid=bc6b&retry-after=3")
	if err != nil || st != 202 || rid != "bc6b" || ra != 3*time.Second {
		t.Errorf("ParseDPSResponseTopic = %d %q %v %v", st, rid, ra, err)
	}
	for _, bad := range []string{"$dps/registrations/res/abc/?$rid=1", "$dps/registrations/res/202/?$rid=1&retry-after=x", "$dps/registrations/res/202", "$iothub/methods/res/200/?$rid=1"} {
		if _, _, _, err := ParseDPSResponseTopic(bad); !errors.Is(err, ErrDPSTopic) {
			t.Errorf("ParseDPSResponseTopic(%q) = %v", bad, err)
		}
	}
}

// TestDPSBodies: the captured 200 body of §5.4 decodes into
// DPSOperation and re-encodes with the same members.
func TestDPSBodies(t *testing.T) {
	const captured = `{"operationId":"4.65f6","status":"assigned","registrationState":{"registrationId":"dev-01","createdDateTimeUtc":"2023-02-23T23:42:29.8828674Z","assignedHub":"crispop-iothub1.azure-devices.net","deviceId":"dev-01","status":"assigned","substatus":"initialAssignment","lastUpdatedDateTimeUtc":"2023-02-23T23:42:30.1319067Z","etag":"IjcxMDAzODUyLTAwMDAtMDEwMC0wMDAwLTYzZjdmOWU2MDAwMCI="}}`
	var op DPSOperation
	if err := json.Unmarshal([]byte(captured), &op); err != nil {
		t.Fatal(err)
	}
	if op.RegistrationState == nil || op.RegistrationState.AssignedHub != "crispop-iothub1.azure-devices.net" || op.RegistrationState.DeviceID != "dev-01" {
		t.Fatalf("decoded %+v", op)
	}
	b, err := json.Marshal(op)
	if err != nil || string(b) != captured {
		t.Errorf("re-encoded\n%s\nwant\n%s", b, captured)
	}
	req, _ := json.Marshal(DPSRegisterRequest{RegistrationID: "dev-01"})
	if string(req) != `{"registrationId":"dev-01"}` {
		t.Errorf("register body %s", req)
	}
}

// FuzzDPSTopics: DPS parsers never panic, and what parses re-renders to
// the same values.
func FuzzDPSTopics(f *testing.F) {
	for _, s := range []string{
		"$dps/registrations/res/202/?$rid=bc6b&retry-after=3", "$dps/registrations/res/200/?$rid=1",
		"$dps/registrations/GET/iotdps-get-operationstatus/?$rid=f97c&operationId=4.65f6.331f",
		"$dps/registrations/PUT/iotdps-register/?$rid=1",
		"0ne00000001/registrations/dev-01/api-version=2019-03-31&ClientVersion=x%2F1", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if st, rid, ra, err := ParseDPSResponseTopic(s); err == nil && !strings.ContainsAny(rid, "&#%+= ") {
			st2, rid2, ra2, err := ParseDPSResponseTopic(DPSResponseTopic(st, rid, ra))
			if err != nil || st2 != st || rid2 != rid || ra2 != ra {
				t.Fatalf("response %q: %d %q %v → %d %q %v %v", s, st, rid, ra, st2, rid2, ra2, err)
			}
		}
		if op, rid, id, err := ParseDPSRequestTopic(s); err == nil && op == DPSPoll && !strings.ContainsAny(rid+id, "&#%+= ;") {
			op2, rid2, id2, err := ParseDPSRequestTopic(DPSPollTopic(rid, id))
			if err != nil || op2 != op || rid2 != rid || id2 != id {
				t.Fatalf("poll %q → %v %q %q %v", s, op2, rid2, id2, err)
			}
		}
		if scope, reg, err := ParseDPSUsername(s); err == nil {
			if scope == "" || reg == "" || strings.Contains(reg, "/") {
				t.Fatalf("username %q parsed to %q %q", s, scope, reg)
			}
		}
	})
}

func TestDPSTimeAndErrorBody(t *testing.T) {
	ts := time.Date(2023, 2, 23, 23, 42, 29, 882867400, time.FixedZone("x", 3600))
	if got, want := DPSTime(ts), "2023-02-23T22:42:29.8828674Z"; got != want {
		t.Errorf("DPSTime = %q, want %q", got, want)
	}
	if got, want := DPSTime(time.Unix(0, 0)), "1970-01-01T00:00:00.0000000Z"; got != want {
		t.Errorf("DPSTime(epoch) = %q, want %q", got, want)
	}
	b, err := json.Marshal(DPSError{ErrorCode: 401002, TrackingID: "t", Message: "Unauthorized", TimestampUTC: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `{"errorCode":401002,"trackingId":"t","message":"Unauthorized","timestampUtc":"x"}`; got != want {
		t.Errorf("DPSError JSON %s, want %s", got, want)
	}
}
