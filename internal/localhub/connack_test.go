package localhub_test

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/methodd/methodd/internal/localhub"
)

// mqttString is an MQTT length-prefixed string.
func mqttString(s string) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(len(s)))
	return append(b, s...)
}

// rawConnect encodes a CONNECT packet: protocol name and level as given,
// clean session, username and password when set, and for level 5 an empty
// property list.
func rawConnect(name string, level byte, clientID, user, pass string) []byte {
	flags := byte(0x02)
	if user != "" {
		flags |= 0x80
	}
	if pass != "" {
		flags |= 0x40
	}
	vh := append(mqttString(name), level, flags, 0, 60)
	if level == 5 {
		vh = append(vh, 0)
	}
	vh = append(vh, mqttString(clientID)...)
	if user != "" {
		vh = append(vh, mqttString(user)...)
	}
	if pass != "" {
		vh = append(vh, mqttString(pass)...)
	}
	pk := []byte{0x10}
	for n := len(vh); ; {
		b := byte(n % 128)
		n /= 128
		if n > 0 {
			b |= 0x80
		}
		pk = append(pk, b)
		if n == 0 {
			break
		}
	}
	return append(pk, vh...)
}

// dialTLS opens a TLS connection to addr trusting the hub's CA.
func (th *testHub) dialTLS(t *testing.T, addr string) *tls.Conn {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: th.pool, ServerName: localhub.HostName})
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// readAll reads what the server sends until it closes (or waitFor passes).
func readAll(t *testing.T, c net.Conn) []byte {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(waitFor))
	b, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("server kept the connection open; read %x", b)
	}
	return b
}

// TestConnackCodesAreMQTT311: every refused CONNECT is answered with an
// MQTT 3.1.1 CONNACK (20 02 00 rc, rc 1..5) and the connection closed,
// whatever protocol level the client claimed.
func TestConnackCodesAreMQTT311(t *testing.T) {
	th := startHub(t, localhub.Options{})
	c := th.creds(t, "dev1", time.Hour)
	cases := []struct {
		name string
		pk   []byte
		want []byte // nil: closed without CONNACK
	}{
		{"ok", rawConnect("MQTT", 4, c.clientID, c.username, c.password), []byte{0x20, 2, 0, 0}},
		{"level 5", rawConnect("MQTT", 5, c.clientID, c.username, c.password), []byte{0x20, 2, 0, 1}},
		{"level 3", rawConnect("MQIsdp", 3, c.clientID, c.username, c.password), []byte{0x20, 2, 0, 1}},
		{"level 6", rawConnect("MQTT", 6, c.clientID, c.username, c.password), []byte{0x20, 2, 0, 1}},
		{"bad password", rawConnect("MQTT", 4, c.clientID, c.username, "x"), []byte{0x20, 2, 0, 5}},
		{"no username", rawConnect("MQTT", 4, c.clientID, "", ""), []byte{0x20, 2, 0, 5}},
		{"empty client id", rawConnect("MQTT", 4, "", c.username, c.password), []byte{0x20, 2, 0, 5}},
		{"client id ..", rawConnect("MQTT", 4, "..", "localhost/../?api-version=2021-04-12", c.password), []byte{0x20, 2, 0, 5}},
		{"client id dev/a/b", rawConnect("MQTT", 4, "dev1/a/b", "localhost/dev1/a/b/?api-version=2021-04-12", c.password), []byte{0x20, 2, 0, 5}},
		{"bad protocol name", rawConnect("MQTX", 4, c.clientID, c.username, c.password), []byte{0x20, 2, 0, 1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conn := th.dialTLS(t, th.info.MQTTAddr)
			if _, err := conn.Write(tc.pk); err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(tc.want, []byte{0x20, 2, 0, 0}) {
				got := make([]byte, 4)
				_ = conn.SetReadDeadline(time.Now().Add(waitFor))
				if _, err := io.ReadFull(conn, got); err != nil || !bytes.Equal(got, tc.want) {
					t.Fatalf("got CONNACK %x (%v), want %x", got, err, tc.want)
				}
				return
			}
			if got := readAll(t, conn); !bytes.Equal(got, tc.want) {
				t.Errorf("got %x, want %x then close", got, tc.want)
			}
		})
	}
}
