package localhub_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/methodd/methodd/internal/localhub"
	"github.com/methodd/methodd/iothub"
)

// shortBounds are network bounds small enough for tests.
func shortBounds(o localhub.Options) localhub.Options {
	o.ConnectTimeout = 300 * time.Millisecond
	o.RequestTimeout = 300 * time.Millisecond
	o.IdleTimeout = 300 * time.Millisecond
	return o
}

// closedWithin fails unless the server closes c within d (bytes it sends
// first are ignored).
func closedWithin(t *testing.T, c net.Conn, d time.Duration) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after %v", d)
	}
}

func dialTCP(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestSilentConnectionsClosed: a connection that never starts TLS, never
// finishes a request or never sends CONNECT is closed after its deadline,
// on every listener.
func TestSilentConnectionsClosed(t *testing.T) {
	th := startHub(t, shortBounds(localhub.Options{WSAddr: "127.0.0.1:0", DPSAddr: "127.0.0.1:0"}))
	listeners := map[string]string{"mqtts": th.info.MQTTAddr, "wss": th.info.WSAddr, "https": th.info.HTTPSAddr, "dps": th.Info().DPS.Addr}
	for name, addr := range listeners {
		t.Run(name+" no TLS", func(t *testing.T) {
			closedWithin(t, dialTCP(t, addr), waitFor)
		})
		t.Run(name+" TLS then silence", func(t *testing.T) {
			closedWithin(t, th.dialTLS(t, addr), waitFor)
		})
		t.Run(name+" half a TLS hello", func(t *testing.T) {
			c := dialTCP(t, addr)
			_, _ = c.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00}) // a record header, no body
			closedWithin(t, c, waitFor)
		})
	}
	t.Run("https slowloris headers", func(t *testing.T) {
		c := th.dialTLS(t, th.info.HTTPSAddr)
		_, _ = io.WriteString(c, "GET /devices/dev1?api-version=2021-04-12 HTTP/1.1\r\nHost: localhost\r\nX-A: ")
		closedWithin(t, c, waitFor)
	})
	t.Run("wss upgrade without frames", func(t *testing.T) {
		c := th.dialTLS(t, th.info.WSAddr)
		_, _ = io.WriteString(c, "GET "+localhub.WebSocketPath+" HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n")
		closedWithin(t, c, waitFor)
	})
	t.Run("https idle keep-alive", func(t *testing.T) {
		c := th.dialTLS(t, th.info.HTTPSAddr)
		_, _ = io.WriteString(c, "GET /nowhere HTTP/1.1\r\nHost: localhost\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		closedWithin(t, c, waitFor)
	})
}

// TestSlowBodyRefused: an authorized request whose body never ends is
// answered (400006) or closed within the request timeout; an endless
// chunked one and a huge Content-Length are 413 without being read.
func TestSlowBodyRefused(t *testing.T) {
	th := startHub(t, shortBounds(localhub.Options{}))
	auth := th.serviceSAS(t)
	head := func(extra string) string {
		return "POST /twins/dev1/methods?api-version=2021-04-12 HTTP/1.1\r\nHost: localhost\r\nAuthorization: " + auth +
			"\r\nContent-Type: application/json\r\n" + extra + "\r\n"
	}
	t.Run("slow body", func(t *testing.T) {
		c := th.dialTLS(t, th.info.HTTPSAddr)
		_, _ = io.WriteString(c, head("Content-Length: 100\r\n")+`{"methodName":`)
		closedWithin(t, c, waitFor)
	})
	t.Run("huge Content-Length", func(t *testing.T) {
		c := th.dialTLS(t, th.info.HTTPSAddr)
		_, _ = io.WriteString(c, head("Content-Length: 99999999999\r\n"))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("got %v, %v; want 413", resp, err)
		}
		_ = resp.Body.Close()
	})
	t.Run("endless chunked body", func(t *testing.T) {
		c := th.dialTLS(t, th.info.HTTPSAddr)
		_, _ = io.WriteString(c, head("Transfer-Encoding: chunked\r\n"))
		done := make(chan struct{})
		go func() { // writes until the server stops reading
			defer close(done)
			chunk := fmt.Sprintf("%x\r\n%s\r\n", 4096, strings.Repeat("x", 4096))
			for {
				if _, err := io.WriteString(c, chunk); err != nil {
					return
				}
			}
		}()
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("got %v, %v; want 413", resp, err)
		}
		_ = resp.Body.Close()
		c.Close()
		<-done
	})
	t.Run("unauthorized body not read", func(t *testing.T) {
		c := th.dialTLS(t, th.info.HTTPSAddr)
		_, _ = io.WriteString(c, "PUT /devices/x?api-version=2021-04-12 HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("got %v, %v; want 401 before the body", resp, err)
		}
		_ = resp.Body.Close()
		closedWithin(t, c, waitFor)
	})
}

// TestPendingConnectionCap: past MaxPendingConns unauthenticated
// connections a new one is closed at once; a connection that has
// authenticated (a device's CONNACK, a service's authorized request) no
// longer counts.
func TestPendingConnectionCap(t *testing.T) {
	th := startHub(t, localhub.Options{MaxPendingConns: 3})
	t.Run("mqtts", func(t *testing.T) {
		th.dialTLS(t, th.info.MQTTAddr)
		th.dialTLS(t, th.info.MQTTAddr)
		th.mustConnect(t, "dev1") // authenticated: leaves the count
		th.dialTLS(t, th.info.MQTTAddr)
		closedWithin(t, dialTCP(t, th.info.MQTTAddr), waitFor) // the 4th pending one
	})
	t.Run("https", func(t *testing.T) {
		th.dialTLS(t, th.info.HTTPSAddr)
		th.dialTLS(t, th.info.HTTPSAddr)
		c := th.dialTLS(t, th.info.HTTPSAddr)
		_, _ = io.WriteString(c, "GET /devices/dev1?api-version=2021-04-12 HTTP/1.1\r\nHost: localhost\r\nAuthorization: "+th.serviceSAS(t)+"\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("authorized request: %v, %v", resp, err)
		}
		_ = resp.Body.Close()
		th.dialTLS(t, th.info.HTTPSAddr)
		closedWithin(t, dialTCP(t, th.info.HTTPSAddr), waitFor)
	})
}

// serviceSAS is an Authorization header of the hub's iothubowner policy.
func (th *testHub) serviceSAS(t *testing.T) string {
	t.Helper()
	cs, err := iothub.ParseServiceConnectionString(th.Info().ServiceConnectionString)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := iothub.Sign(cs.HostName, cs.SharedAccessKey, cs.SharedAccessKeyName, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
