package invoke

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/methodd/methodd/iothub"
)

func TestOutcomeLine(t *testing.T) {
	notOnline := iothub.NewError(iothub.CodeDeviceNotOnline, "not online")
	notOnline.TrackingID = "tid-1"
	tests := []struct {
		name string
		o    Outcome
		want string
	}{
		{"result", Outcome{Target: Target{Device: "d1"}, Result: Result{Status: 200, Payload: json.RawMessage(`{"a": 1}`)}}, `{"device":"d1","status":200,"payload":{"a": 1}}`},
		{"module", Outcome{Target: Target{Device: "d", Module: "m"}, Result: Result{Status: 500, Payload: json.RawMessage(`"x"`)}}, `{"device":"d/m","status":500,"payload":"x"}`},
		{"multi-line payload", Outcome{Target: Target{Device: "d"}, Result: Result{Status: 200, Payload: json.RawMessage("[1,\n 2]")}}, `{"device":"d","status":200,"payload":[1,2]}`},
		{"empty payload", Outcome{Target: Target{Device: "d"}, Result: Result{Status: 200}}, `{"device":"d","status":200,"payload":null}`},
		{"hub error", Outcome{Target: Target{Device: "d"}, Err: fmt.Errorf("invoke d m: %w", notOnline)}, `{"device":"d","error":{"code":404103,"message":"not online","trackingId":"tid-1"}}`},
		{"network error", Outcome{Target: Target{Device: "\"q\""}, Err: errors.New("dial tcp: refused")}, `{"device":"\"q\"","error":{"code":0,"message":"dial tcp: refused"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.o.Line()
			if string(b) != tt.want {
				t.Errorf("got  %s\nwant %s", b, tt.want)
			}
			if !json.Valid(b) {
				t.Errorf("line %s is not valid JSON", b)
			}
		})
	}
}

func TestKindOf(t *testing.T) {
	tests := []struct {
		name string
		r    Result
		err  error
		want Kind
	}{
		{"200", Result{Status: 200}, nil, KindOK},
		{"299", Result{Status: 299}, nil, KindOK},
		{"199", Result{Status: 199}, nil, KindDeviceError},
		{"404 from device", Result{Status: 404}, nil, KindDeviceError},
		{"404001", Result{}, iothub.NewError(iothub.CodeDeviceNotFound, ""), KindUnreachable},
		{"404010", Result{}, iothub.NewError(iothub.CodeModuleNotFound, ""), KindUnreachable},
		{"404103", Result{}, iothub.NewError(iothub.CodeDeviceNotOnline, ""), KindUnreachable},
		{"504101", Result{}, iothub.NewError(iothub.CodeGatewayTimeout, ""), KindTimeout},
		{"legacy GatewayTimeout", Result{}, &iothub.Error{HTTPStatus: 504, Name: "GatewayTimeout"}, KindTimeout},
		{"401002", Result{}, iothub.NewError(iothub.CodeUnauthorized, ""), KindError},
		{"network", Result{}, errors.New("x"), KindError},
	}
	for _, tt := range tests {
		if got := KindOf(tt.r, tt.err); got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestSummary(t *testing.T) {
	var s Summary
	for i := 1; i <= 100; i++ {
		s.Add(Outcome{Result: Result{Status: 200}, Latency: time.Duration(i) * time.Millisecond, Attempts: 1})
	}
	s.Add(Outcome{Result: Result{Status: 500}, Latency: 500 * time.Millisecond, Attempts: 1})
	s.Add(Outcome{Err: iothub.NewError(iothub.CodeDeviceNotOnline, ""), Latency: time.Millisecond, Attempts: 1})
	s.Add(Outcome{Err: errors.New("canceled")}) // never started: no latency
	if s.Total() != 103 || s.Answered() != 101 || s.Counts[KindUnreachable] != 1 || s.Counts[KindError] != 1 {
		t.Errorf("counts %v total %d answered %d", s.Counts, s.Total(), s.Answered())
	}
	if p := s.Percentile(50); p != 50*time.Millisecond {
		t.Errorf("p50 = %v, want 50ms (101 and 1ms twice)", p)
	}
	if p := s.Percentile(99); p != 100*time.Millisecond {
		t.Errorf("p99 = %v, want 100ms", p)
	}
	want := "103 calls: 100 ok, 1 device-error, 1 unreachable, 0 timeout, 1 error; latency p50 50ms p99 100ms"
	if s.String() != want {
		t.Errorf("got  %q\nwant %q", s.String(), want)
	}
	var empty Summary
	if empty.Percentile(50) != 0 {
		t.Errorf("empty p50 not 0")
	}
}
