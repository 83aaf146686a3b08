package iothub

import (
	"errors"
	"strings"
	"testing"
)

func TestMethodRequestEncodeKeepsPayloadBytes(t *testing.T) {
	tests := []struct {
		payload string
		want    string
	}{
		{"", `{"methodName":"m","payload":null,"responseTimeoutInSeconds":30,"connectTimeoutInSeconds":0}`},
		{`{"a": [1, 2.50, "<&>"]}`, `{"methodName":"m","payload":{"a": [1, 2.50, "<&>"]},"responseTimeoutInSeconds":30,"connectTimeoutInSeconds":0}`},
		{`"str"`, `{"methodName":"m","payload":"str","responseTimeoutInSeconds":30,"connectTimeoutInSeconds":0}`},
	}
	for _, tt := range tests {
		r := MethodRequest{MethodName: "m", ResponseTimeoutInSeconds: 30}
		if tt.payload != "" {
			r.Payload = []byte(tt.payload)
		}
		if got := string(r.Encode()); got != tt.want {
			t.Errorf("Encode = %s\nwant     %s", got, tt.want)
		}
	}
}

func TestDecodeMethodRequest(t *testing.T) {
	big := `"` + strings.Repeat("x", MaxPayloadBytes) + `"`
	tests := []struct {
		name, body  string
		wantCode    int
		wantPayload string
		wantResp    int
		wantConn    int
	}{
		{"all fields", `{"methodName":"m","payload":{"a":1},"responseTimeoutInSeconds":5,"connectTimeoutInSeconds":300}`, 0, `{"a":1}`, 5, 300},
		{"defaults", `{"methodName":"m"}`, 0, "", 30, 0},
		{"null payload", `{"methodName":"m","payload":null}`, 0, "", 30, 0},
		{"array payload verbatim", `{"methodName":"m","payload":[1, "two" ,null]}`, 0, `[1, "two" ,null]`, 30, 0},
		{"not json", `{"methodName":`, CodeIotHubFormatError, "", 0, 0},
		{"not an object", `[1]`, CodeIotHubFormatError, "", 0, 0},
		{"trailing data", `{"methodName":"m"} {}`, CodeIotHubFormatError, "", 0, 0},
		{"no method", `{"payload":1}`, CodeArgumentNull, "", 0, 0},
		{"bad method", `{"methodName":"a/b"}`, CodeArgumentInvalid, "", 0, 0},
		{"timeout low", `{"methodName":"m","responseTimeoutInSeconds":4}`, CodeArgumentInvalid, "", 0, 0},
		{"timeout high", `{"methodName":"m","responseTimeoutInSeconds":301}`, CodeArgumentInvalid, "", 0, 0},
		{"timeout fractional", `{"methodName":"m","responseTimeoutInSeconds":5.5}`, CodeArgumentInvalid, "", 0, 0},
		{"connect negative", `{"methodName":"m","connectTimeoutInSeconds":-1}`, CodeArgumentInvalid, "", 0, 0},
		{"too large", `{"methodName":"m","payload":` + big + `}`, CodeMessageTooLarge, "", 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := DecodeMethodRequest([]byte(tt.body))
			if tt.wantCode != 0 {
				var e *Error
				if !errors.As(err, &e) || e.Code != tt.wantCode || e.HTTPStatus != tt.wantCode/1000 {
					t.Fatalf("got %v, want an *Error with code %d", err, tt.wantCode)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(r.Payload) != tt.wantPayload || r.ResponseTimeoutInSeconds != tt.wantResp || r.ConnectTimeoutInSeconds != tt.wantConn {
				t.Errorf("got %+v (payload %s)", r, r.Payload)
			}
		})
	}
}

func TestMethodsPath(t *testing.T) {
	if got := MethodsPath("dev 1#", ""); got != "/twins/dev%201%23/methods" {
		t.Errorf("got %q", got)
	}
	if got := MethodsPath("d", "m"); got != "/twins/d/modules/m/methods" {
		t.Errorf("got %q", got)
	}
}

func TestEncodeMethodResult(t *testing.T) {
	if got := string(EncodeMethodResult(200, nil)); got != `{"status":200,"payload":null}` {
		t.Errorf("got %s", got)
	}
	if got := string(EncodeMethodResult(-3, []byte(`{"x": "é"}`))); got != `{"status":-3,"payload":{"x": "é"}}` {
		t.Errorf("got %s", got)
	}
}
