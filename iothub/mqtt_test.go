package iothub

import (
	"errors"
	"testing"
)

// TestMQTTVectors is TV5 of the protocol doc.
func TestMQTTVectors(t *testing.T) {
	if got := ClientID("device-1", ""); got != "device-1" {
		t.Errorf("ClientID = %q", got)
	}
	if got := ClientID("device-1", "module-a"); got != "device-1/module-a" {
		t.Errorf("ClientID = %q", got)
	}
	if got, want := Username(tvHost, "device-1", ""), "myhub.azure-devices.net/device-1/?api-version=2021-04-12"; got != want {
		t.Errorf("Username = %q, want %q", got, want)
	}
	if got, want := Username(tvHost, "device-1/module-a", ""), "myhub.azure-devices.net/device-1/module-a/?api-version=2021-04-12"; got != want {
		t.Errorf("Username = %q, want %q", got, want)
	}
	m, rid, err := ParseMethodRequestTopic("$iothub/methods/POST/reboot/?$rid=7")
	if err != nil || m != "reboot" || rid != "7" {
		t.Errorf("ParseMethodRequestTopic = %q, %q, %v", m, rid, err)
	}
	if got := MethodResponseTopic(200, "7"); got != "$iothub/methods/res/200/?$rid=7" {
		t.Errorf("MethodResponseTopic = %q", got)
	}
}

func TestUsernameWithClientType(t *testing.T) {
	u := Username("h", "d", "methodd/1.0 (linux; amd64)")
	if u != "h/d/?api-version=2021-04-12&DeviceClientType=methodd%2F1.0+%28linux%3B+amd64%29" {
		t.Errorf("Username = %q", u)
	}
	info, err := ParseUsername(u)
	if err != nil || info.Host != "h" || info.ClientID != "d" || info.Query.Get("DeviceClientType") != "methodd/1.0 (linux; amd64)" {
		t.Errorf("ParseUsername = %+v, %v", info, err)
	}
}

func TestParseUsername(t *testing.T) {
	tests := []struct {
		in, host, client string
		ok               bool
	}{
		{"h.net/d1/?api-version=2021-04-12", "h.net", "d1", true},
		{"h.net/d1/m1/?api-version=2021-04-12&DeviceClientType=x%2F1", "h.net", "d1/m1", true},
		{"localhost:8883/d1/?api-version=2020-09-30", "localhost:8883", "d1", true},
		{"h.net/d1/api-version=2020-09-30", "h.net", "d1", true}, // amenzhinsky's form
		{"h.net/d1/", "", "", false},
		{"h.net/d1/?DeviceClientType=x", "", "", false},
		{"h.net/d1", "", "", false},
		{"/d1/?api-version=1", "", "", false},
		{"h.net//?api-version=1", "", "", false},
	}
	for _, tt := range tests {
		info, err := ParseUsername(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("ParseUsername(%q) error = %v, want ok=%v", tt.in, err, tt.ok)
			continue
		}
		if tt.ok && (info.Host != tt.host || info.ClientID != tt.client) {
			t.Errorf("ParseUsername(%q) = %q, %q; want %q, %q", tt.in, info.Host, info.ClientID, tt.host, tt.client)
		}
	}
}

func TestMethodTopics(t *testing.T) {
	tests := []struct {
		topic, method, rid string
		ok                 bool
	}{
		{"$iothub/methods/POST/getCarVIN/?$rid=1", "getCarVIN", "1", true},
		{"$iothub/methods/POST/m/?$rid=abc-DEF.9", "m", "abc-DEF.9", true},
		{"$iothub/methods/POST/m/?$rid=5&x=y", "m", "5", true},
		{"$iothub/methods/POST/m%20x/?$rid=5", "m%20x", "5", true}, // undecoded, like C/C#/Node
		{"$iothub/methods/POST//?$rid=1", "", "", false},
		{"$iothub/methods/POST/m/?rid=1", "", "", false},
		{"$iothub/methods/POST/m/?$rid=", "", "", false},
		{"$iothub/methods/POST/m", "", "", false},
		{"$iothub/twin/res/200/?$rid=1", "", "", false},
	}
	for _, tt := range tests {
		m, rid, err := ParseMethodRequestTopic(tt.topic)
		if (err == nil) != tt.ok {
			t.Errorf("ParseMethodRequestTopic(%q) error = %v, want ok=%v", tt.topic, err, tt.ok)
			continue
		}
		if err != nil && !errors.Is(err, ErrTopic) {
			t.Errorf("error %v does not wrap ErrTopic", err)
		}
		if m != tt.method || rid != tt.rid {
			t.Errorf("ParseMethodRequestTopic(%q) = %q, %q; want %q, %q", tt.topic, m, rid, tt.method, tt.rid)
		}
		if tt.ok && tt.method != "" && MethodRequestTopic(m, rid) != tt.topic && !containsAmp(tt.topic) {
			t.Errorf("MethodRequestTopic round trip = %q, want %q", MethodRequestTopic(m, rid), tt.topic)
		}
	}
	for _, tt := range []struct {
		topic  string
		status int
		rid    string
		ok     bool
	}{
		{"$iothub/methods/res/200/?$rid=7", 200, "7", true},
		{"$iothub/methods/res/-1/?$rid=x", -1, "x", true},
		{"$iothub/methods/res/abc/?$rid=7", 0, "", false},
		{"$iothub/methods/res/200", 0, "", false},
		{"$iothub/methods/res/200/?$rid=", 0, "", false},
	} {
		s, rid, err := ParseMethodResponseTopic(tt.topic)
		if (err == nil) != tt.ok || s != tt.status || rid != tt.rid {
			t.Errorf("ParseMethodResponseTopic(%q) = %d, %q, %v", tt.topic, s, rid, err)
		}
		if !IsMethodResponseTopic(tt.topic) {
			t.Errorf("IsMethodResponseTopic(%q) = false", tt.topic)
		}
	}
}

func containsAmp(s string) bool {
	for i := range s {
		if s[i] == '&' {
			return true
		}
	}
	return false
}

func TestValidMethodName(t *testing.T) {
	for _, ok := range []string{"ping", "restart-Service_2", "a", "x.y", "!~*'"} {
		if !ValidMethodName(ok) {
			t.Errorf("ValidMethodName(%q) = false", ok)
		}
	}
	long := make([]byte, 129)
	for i := range long {
		long[i] = 'a'
	}
	for _, bad := range []string{"", "a/b", "a+b", "a#b", "$x", "a b", "a?b", "é", "a\tb", string(long), "a=b", "{x}"} {
		if ValidMethodName(bad) {
			t.Errorf("ValidMethodName(%q) = true", bad)
		}
	}
}
