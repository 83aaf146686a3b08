package reliability

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/methodd/methodd/iothub"
)

// MQTT 3.1.1 packets, hand-encoded so that they can be wrong on purpose.

func mqttString(s string) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(len(s)))
	return append(b, s...)
}

func mqttPacket(header byte, body []byte) []byte {
	b := []byte{header}
	n := len(body)
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if n == 0 {
			break
		}
	}
	return append(b, body...)
}

func connectPacket(clientID, username, password string) []byte {
	body := append(mqttString("MQTT"), 4, 0xC0, 0, 60) // 3.1.1, user+password, clean 0, keep-alive 60 s
	body = append(body, mqttString(clientID)...)
	body = append(body, mqttString(username)...)
	body = append(body, mqttString(password)...)
	return mqttPacket(0x10, body)
}

func subscribePacket(topic string, qos byte) []byte {
	body := append([]byte{0, 1}, mqttString(topic)...)
	return mqttPacket(0x82, append(body, qos))
}

func publishPacket(topic string, qos byte, payload []byte) []byte {
	body := mqttString(topic)
	if qos > 0 {
		body = append(body, 0, 7)
	}
	return mqttPacket(0x30|qos<<1, append(body, payload...))
}

// rogue is a raw client of the hub's MQTT/TLS port.
type rogue struct {
	t    *testing.T
	th   *testHub
	conn net.Conn
}

func dialRogue(t *testing.T, th *testHub, withTLS bool) *rogue {
	t.Helper()
	c, err := net.DialTimeout("tcp", th.info.MQTTAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if withTLS {
		tc := tls.Client(c, &tls.Config{RootCAs: th.roots(t), ServerName: "localhost"})
		if err := tc.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
			t.Fatal(err)
		}
		if err := tc.Handshake(); err != nil {
			t.Fatalf("TLS handshake: %v", err)
		}
		if err := tc.SetDeadline(time.Time{}); err != nil {
			t.Fatal(err)
		}
		c = tc
	}
	return &rogue{t: t, th: th, conn: c}
}

// login connects as identity id with a valid token and checks CONNACK 0.
func (r *rogue) login(id string) {
	r.t.Helper()
	cs, err := iothub.ParseDeviceConnectionString(r.th.info.Devices[id])
	if err != nil {
		r.t.Fatal(err)
	}
	tok, err := iothub.Sign(cs.Resource(), cs.SharedAccessKey, "", time.Now().Add(time.Hour))
	if err != nil {
		r.t.Fatal(err)
	}
	r.send(connectPacket(cs.ClientID(), iothub.Username(cs.HostName, cs.ClientID(), "rogue"), tok))
	ack := make([]byte, 4)
	if err := r.conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		r.t.Fatal(err)
	}
	if _, err := io.ReadFull(r.conn, ack); err != nil || ack[0] != 0x20 || ack[3] != 0 {
		r.t.Fatalf("CONNACK for %s: % x, %v", id, ack, err)
	}
	if err := r.conn.SetReadDeadline(time.Time{}); err != nil {
		r.t.Fatal(err)
	}
}

// send writes b; a write error is fine (the hub may have hung up already).
func (r *rogue) send(b []byte) {
	_ = r.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, _ = r.conn.Write(b)
}

// closedWithin reports whether the hub closes the connection within d
// (whatever it sends before that is read and discarded).
func (r *rogue) closedWithin(d time.Duration) bool {
	_ = r.conn.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, r.conn)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// TestRogueClients connects clients that break the rules to the hub while a
// well-behaved daemon answers calls: each rogue is disconnected (slowloris
// connections within the hub's 30 s connect grace), and every call to the
// daemon is answered correctly throughout.
func TestRogueClients(t *testing.T) {
	ids := []string{deviceID}
	for i := range 8 {
		ids = append(ids, "rogue-"+strconv.Itoa(i))
	}
	th := startHub(t, ids...)
	startDaemon(t, th.daemonConfig(t, deviceID, ""), echoYAML)
	l := startLoad(th, 2, 20*time.Millisecond, 10)

	// Slowloris first: they must be gone within the connect grace.
	slowStart := time.Now()
	var slow []*rogue
	for i := range 10 {
		r := dialRogue(t, th, i%2 == 0) // half never finish TLS, half never finish CONNECT
		if i%2 == 0 {
			r.send(connectPacket("rogue-slow", "x", "y")[:7])
		}
		slow = append(slow, r)
	}

	big := bytes.Repeat([]byte("x"), 300*1024)
	cases := []struct {
		name string
		tls  bool
		id   string // "" = do not log in
		send []byte
	}{
		{"subscribe to a foreign topic", true, "rogue-0", subscribePacket("foo/#", 0)},
		{"subscribe to another device's topic", true, "rogue-1", subscribePacket("devices/"+deviceID+"/messages/devicebound/#", 1)},
		{"publish to a non-IoT-Hub topic", true, "rogue-2", publishPacket("foo/bar", 0, []byte(`{}`))},
		{"publish QoS 2", true, "rogue-3", publishPacket("devices/rogue-3/messages/events/", 2, []byte(`{}`))},
		{"publish a reply with a malformed topic", true, "rogue-4", publishPacket("$iothub/methods/res/abc", 0, []byte(`{}`))},
		{"oversized packet (300 KB)", true, "rogue-5", publishPacket("$iothub/methods/res/200/?$rid=1", 0, big)},
		{"garbage after CONNECT", true, "rogue-6", randomBytes(1, 4096)},
		{"garbage instead of CONNECT", true, "", randomBytes(2, 4096)},
		{"garbage instead of TLS", false, "", randomBytes(3, 4096)},
		{"a second CONNECT", true, "rogue-7", connectPacket("rogue-7", "x", "y")},
	}
	for _, c := range cases {
		r := dialRogue(t, th, c.tls)
		if c.id != "" {
			r.login(c.id)
		}
		go r.send(c.send) // the hub may stop reading before the end
		if !r.closedWithin(10 * time.Second) {
			t.Errorf("%s: still connected after 10s", c.name)
		}
	}
	for i, r := range slow {
		if !r.closedWithin(time.Until(slowStart.Add(35 * time.Second))) {
			t.Errorf("slowloris %d: still connected %v after it opened", i, time.Since(slowStart).Round(time.Second))
		}
	}
	l.stop()
	logRow(t, "rogue clients beside the daemon ("+strconv.Itoa(len(cases)+len(slow))+" connections)", len(cases)+len(slow), &l.counts, nil)
	if l.lost.Load() != 0 || l.wrong.Load() != 0 || l.answered.Load() == 0 {
		t.Errorf("the well-behaved daemon beside the rogues: %s, want every call answered", l.String())
	}
}

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}
