package iothub

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestParseErrorTV6 is TV6: both body formats of §5.3.
func TestParseErrorTV6(t *testing.T) {
	a := `{"Message":"{\"errorCode\":404103,\"trackingId\":\"aa761f96e9174d0e849c96a8b2e10a8c-TimeStamp:03/14/2024 09:54:49\",\"message\":\"The operation failed because the requested device isn't online or hasn't registered the direct method callback. To learn more, see https://aka.ms/iothub404103\",\"info\":{\"timeout\":\"00:00:00\"},\"timestampUtc\":\"2024-03-14T09:54:49.6536567Z\"}","ExceptionMessage":""}`
	e := ParseError(404, "DeviceNotOnline", []byte(a))
	if e.Code != 404103 || e.TrackingID != "aa761f96e9174d0e849c96a8b2e10a8c-TimeStamp:03/14/2024 09:54:49" || e.Name != "DeviceNotOnline" {
		t.Errorf("format A: %+v", e)
	}
	if string(e.Info) != `{"timeout":"00:00:00"}` || e.Timestamp.IsZero() {
		t.Errorf("format A info/timestamp: %s %v", e.Info, e.Timestamp)
	}
	b := `{"Message":"ErrorCode:DeviceNotOnline;Timed out waiting for device to connect.","ExceptionMessage":"Tracking ID:66b8d59066b24105a49bffcbde18495d-G:5-TimeStamp:01/18/2017 08:11:45"}`
	e = ParseError(404, "", []byte(b))
	if e.Name != "DeviceNotOnline" || e.Code != 404103 || e.TrackingID != "66b8d59066b24105a49bffcbde18495d-G:5-TimeStamp:01/18/2017 08:11:45" || e.Message != "Timed out waiting for device to connect." {
		t.Errorf("format B: %+v", e)
	}
}

func TestParseErrorOddBodies(t *testing.T) {
	e := ParseError(502, "", []byte("<html>bad gateway</html>"))
	if e.HTTPStatus != 502 || e.Message != "<html>bad gateway</html>" {
		t.Errorf("got %+v", e)
	}
	e = ParseError(400, "", []byte(`{"Message":"{\"errorCode\":\"400004\",\"message\":\"m\"}"}`))
	if e.Code != 400004 || e.Name != "ArgumentInvalid" {
		t.Errorf("string errorCode: %+v", e)
	}
}

// TestErrorBodyRoundTrip: what the hub emits is format A and parses back.
func TestErrorBodyRoundTrip(t *testing.T) {
	e := NewError(CodeGatewayTimeout, "Timed out waiting for the response from device.")
	e.TrackingID = "abc-TimeStamp:01/02/2026 03:04:05"
	e.Timestamp = time.Date(2026, 1, 2, 3, 4, 5, 600000000, time.UTC)
	body := e.Body()
	var outer map[string]string
	if err := json.Unmarshal(body, &outer); err != nil {
		t.Fatal(err)
	}
	want := `{"errorCode":504101,"trackingId":"abc-TimeStamp:01/02/2026 03:04:05","message":"Timed out waiting for the response from device.","info":{},"timestampUtc":"2026-01-02T03:04:05.6000000Z"}`
	if outer["Message"] != want || outer["ExceptionMessage"] != "" {
		t.Errorf("Message = %s\nwant      %s", outer["Message"], want)
	}
	back := ParseError(504, ErrorName(CodeGatewayTimeout), body)
	if back.Code != e.Code || back.TrackingID != e.TrackingID || back.Message != e.Message || back.Name != "GatewayTimeout" || back.HTTPStatus != 504 {
		t.Errorf("round trip: %+v", back)
	}
	if !strings.Contains(back.Error(), "504101 GatewayTimeout") {
		t.Errorf("Error() = %q", back.Error())
	}
}

func TestNewErrorStatus(t *testing.T) {
	for code, status := range map[int]int{CodeDeviceNotFound: 404, CodeUnauthorized: 401, CodeMessageTooLarge: 413, CodeGatewayTimeout: 504, CodeArgumentInvalid: 400} {
		if e := NewError(code, ""); e.HTTPStatus != status || e.Name == "" {
			t.Errorf("NewError(%d) = %+v", code, e)
		}
	}
}
