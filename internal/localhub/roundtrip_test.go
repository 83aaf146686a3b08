package localhub_test

import (
	"encoding/json"
	"testing"

	"github.com/methodd/methodd/internal/localhub"
	"github.com/methodd/methodd/iothub"
)

// TestRoundTripLikeProtocolDoc: a raw paho client that logs in exactly like
// the protocol doc's CONNECT (username with api-version, SAS password, clean
// session 0, SUBSCRIBE $iothub/methods/POST/# at QoS 0) receives a request
// sent through the REST API, and its reply comes back as the HTTP result.
func TestRoundTripLikeProtocolDoc(t *testing.T) {
	th := startHub(t, localhub.Options{})
	d := th.mustConnect(t, "dev1")
	seen := d.subscribe(t, 0, func(r request) (int, []byte, bool) {
		return 201, []byte(`{"got":` + string(r.payload) + `}`), true
	})

	r := th.invoke(t, "dev1", "", iothub.MethodRequest{
		MethodName: "reboot", Payload: json.RawMessage(`{"delay":5}`), ResponseTimeoutInSeconds: 10,
	})
	if r.status != 200 {
		t.Fatalf("status %d, body %s", r.status, r.body)
	}
	if got, want := r.header.Get("Content-Type"), "application/json; charset=utf-8"; got != want {
		t.Errorf("Content-Type %q, want %q", got, want)
	}
	if id := r.header.Get("x-ms-request-id"); !isUUIDv4(id) {
		t.Errorf("x-ms-request-id %q, want a version-4 UUID", id)
	}
	if got, want := string(r.body), `{"status":201,"payload":{"got":{"delay":5}}}`; got != want {
		t.Errorf("body %s, want %s", got, want)
	}
	req := <-seen
	if req.method != "reboot" || string(req.payload) != `{"delay":5}` {
		t.Errorf("device saw method %q payload %s", req.method, req.payload)
	}
	if want := iothub.MethodRequestTopic("reboot", req.rid); req.topic != want {
		t.Errorf("topic %q, want %q", req.topic, want)
	}
}
