package localhub_test

import (
	"crypto/tls"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/methodd/methodd/internal/localhub"
	"github.com/methodd/methodd/iothub"
)

// TestWebSocketRoundTrip: MQTT over WSS at /$iothub/websocket behaves like
// MQTT over TLS: same login, same methods.
func TestWebSocketRoundTrip(t *testing.T) {
	th := startHub(t, localhub.Options{WSAddr: "127.0.0.1:0"})
	if th.info.WSAddr == "" {
		t.Fatal("hub.json has no wsAddr")
	}
	_, port, _ := strings.Cut(th.info.WSAddr, ":")
	wsURL := "wss://localhost:" + port + localhub.WebSocketPath
	d, err := th.connectURL(t, wsURL, th.creds(t, "dev1", time.Hour))
	if err != nil {
		t.Fatalf("connect over WebSockets: %v", err)
	}
	seen := d.subscribe(t, 0, echo)
	r := th.invoke(t, "dev1", "", iothub.MethodRequest{MethodName: "ws", Payload: []byte(`{"over":"wss"}`)})
	if string(r.body) != `{"status":200,"payload":{"over":"wss"}}` {
		t.Fatalf("got %d %s", r.status, r.body)
	}
	<-seen
}

// TestWebSocketHandshake: the path and subprotocols of §3.1.
func TestWebSocketHandshake(t *testing.T) {
	th := startHub(t, localhub.Options{WSAddr: "127.0.0.1:0"})
	_, port, _ := strings.Cut(th.info.WSAddr, ":")
	dialer := websocket.Dialer{TLSClientConfig: &tls.Config{RootCAs: th.pool}, HandshakeTimeout: waitFor}
	for _, proto := range []string{"mqtt", "MQTT"} {
		ws, resp, err := dialer.Dial("wss://localhost:"+port+localhub.WebSocketPath, http.Header{"Sec-WebSocket-Protocol": {proto}})
		if err != nil {
			t.Fatalf("subprotocol %s: %v", proto, err)
		}
		_ = resp.Body.Close()
		if got := resp.Header.Get("Sec-WebSocket-Protocol"); got != proto {
			t.Errorf("negotiated %q, want %q", got, proto)
		}
		ws.Close()
	}
	_, resp, err := dialer.Dial("wss://localhost:"+port+"/mqtt", nil)
	if resp != nil {
		_ = resp.Body.Close()
	}
	if err == nil || resp == nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("other path: %v, want 404", err)
	}
}
