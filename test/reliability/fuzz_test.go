package reliability

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/methodd/methodd/internal/daemon"
	"github.com/methodd/methodd/internal/device"
	"github.com/methodd/methodd/iothub"
)

// The device session has no seam below MQTT (its request handling is paho's
// message callback), and the real hub picks $rid itself. So FuzzPipeline
// plays the hub: a minimal MQTT/TLS broker on 127.0.0.1 that the real
// device session connects to, which publishes fuzzed request topics and
// payloads and reads the session's replies, which come from the engine.

// fuzzYAML exercises expressions, params validation and a command.
const fuzzYAML = `version: 1
connection: {twin: false}  # the raw broker below speaks methods only
defaults: {timeout: 5s, concurrency: 64}
methods:
  echo:
    reply:
      payload: '{"id": payload.id, "rid": requestId, "m": method}'
  typed:
    params:
      n: {type: integer, min: 0, max: 10, required: true}
      s: {type: string, pattern: '[a-z]*'}
    reply:
      payload: '{"n": params.n}'
  cat:
    run: [/bin/cat]
`

// fakeBroker accepts one device connection at a time and records the
// PUBLISH packets it sends.
type fakeBroker struct {
	ln net.Listener

	mu      sync.Mutex
	conn    net.Conn
	w       *bufio.Writer
	replies []reply
	notify  chan struct{}
	subbed  chan struct{}
}

type reply struct {
	topic   string
	payload []byte
}

func startFakeBroker(t testing.TB) (*fakeBroker, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, IsCA: true, BasicConstraintsValid: true,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})
	if err != nil {
		t.Fatal(err)
	}
	b := &fakeBroker{ln: ln, notify: make(chan struct{}, 1), subbed: make(chan struct{}, 16)}
	var wg sync.WaitGroup
	wg.Go(b.accept)
	t.Cleanup(func() {
		ln.Close()
		b.mu.Lock()
		if b.conn != nil {
			b.conn.Close()
		}
		b.mu.Unlock()
		wg.Wait()
	})
	return b, pool
}

func (b *fakeBroker) accept() {
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		b.serve(c) // one connection at a time
	}
}

// serve answers CONNECT, SUBSCRIBE and PINGREQ and records PUBLISH.
func (b *fakeBroker) serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	b.mu.Lock()
	b.conn, b.w = c, bufio.NewWriter(c)
	b.mu.Unlock()
	for {
		header, body, err := readPacket(r)
		if err != nil {
			return
		}
		switch header >> 4 {
		case 1: // CONNECT
			_ = b.write([]byte{0x20, 2, 0, 0})
		case 8: // SUBSCRIBE
			_ = b.write([]byte{0x90, 3, body[0], body[1], 0})
			b.subbed <- struct{}{}
		case 12: // PINGREQ
			_ = b.write([]byte{0xD0, 0})
		case 3: // PUBLISH (the session replies at QoS 0)
			if len(body) < 2 {
				return
			}
			n := int(binary.BigEndian.Uint16(body))
			if len(body) < 2+n {
				return
			}
			b.mu.Lock()
			b.replies = append(b.replies, reply{topic: string(body[2 : 2+n]), payload: body[2+n:]})
			b.mu.Unlock()
			select {
			case b.notify <- struct{}{}:
			default:
			}
		case 14: // DISCONNECT
			return
		}
	}
}

func (b *fakeBroker) write(p []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.w == nil {
		return errors.New("no connection")
	}
	_ = b.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := b.w.Write(p); err != nil {
		return err
	}
	return b.w.Flush()
}

func readPacket(r *bufio.Reader) (byte, []byte, error) {
	h, err := r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, mult := 0, 1
	for range 4 {
		d, err := r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		n += int(d&0x7f) * mult
		mult *= 128
		if d&0x80 == 0 {
			break
		}
	}
	body := make([]byte, n)
	_, err = io.ReadFull(r, body)
	return h, body, err
}

// waitReply waits (bounded) until a reply whose $rid is rid is recorded.
func (b *fakeBroker) waitReply(rid string, within time.Duration) bool {
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for {
		b.mu.Lock()
		for _, r := range b.replies {
			if _, got, err := iothub.ParseMethodResponseTopic(r.topic); err == nil && got == rid {
				b.mu.Unlock()
				return true
			}
		}
		b.mu.Unlock()
		select {
		case <-b.notify:
		case <-deadline.C:
			return false
		}
	}
}

func (b *fakeBroker) take() []reply {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.replies
	b.replies = nil
	return r
}

// pipelineFixture is the broker plus an in-process daemon (daemon.Run)
// connected to it.
type pipelineFixture struct {
	mu     sync.Mutex // one input at a time
	broker *fakeBroker
	n      int
}

func startPipeline(f *testing.F) *pipelineFixture {
	b, pool := startFakeBroker(f)
	_, port, _ := net.SplitHostPort(b.ln.Addr().String())
	key := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	cs, err := iothub.ParseDeviceConnectionString("HostName=localhost;DeviceId=fuzz;SharedAccessKey=" + key + ";GatewayHostName=localhost:" + port)
	if err != nil {
		f.Fatal(err)
	}
	path, loaded, opts := handlersFile(f, fuzzYAML)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- daemon.Run(ctx, daemon.Config{Path: path, Loaded: loaded, Load: opts,
			Device: device.Config{Identity: cs, RootCAs: pool}, Getenv: daemonEnv})
	}()
	f.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			f.Errorf("daemon.Run: %v", err)
		}
	})
	select {
	case <-b.subbed:
	case <-time.After(15 * time.Second):
		f.Fatal("device session did not subscribe within 15s")
	}
	return &pipelineFixture{broker: b}
}

// FuzzPipeline feeds arbitrary method names, $rid values and payload bytes
// through the device session's request handling into the engine. Every
// request whose topic parses as a method request gets exactly one reply, on
// the reply topic of its $rid, with a valid JSON body of at most 128 KB; a
// request whose topic does not parse gets none. Either way the session
// keeps answering.
func FuzzPipeline(f *testing.F) {
	for _, s := range []struct {
		method, rid string
		payload     []byte
	}{
		{"echo", "1", []byte(`{"id":"x"}`)},
		{"echo", "42", nil},
		{"typed", "7", []byte(`{"n":3,"s":"abc"}`)},
		{"typed", "8", []byte(`{"n":"three"}`)},
		{"cat", "9", []byte(`[1,2,3]`)},
		{"cat", "10", []byte("not json\x00\xff")},
		{"nosuch", "11", []byte(`{}`)},
		{"ping", "a&b=c", []byte(`null`)},
		{"catalog", "💥", []byte(`"str"`)},
		{"echo", "", []byte(`{}`)},
		{"", "12", []byte(`{}`)},
		{"a/b", "13", []byte(`{}`)},
		{"echo", "14/?$rid=15", []byte(`{"id":`)},
		{"ec\x00ho", "16", []byte(`{"id":1e999}`)},
		{"echo", "17", []byte(`{"id":"` + string(make([]byte, 1000)) + `"}`)},
	} {
		f.Add(s.method, s.rid, s.payload)
	}
	fx := startPipeline(f)
	f.Fuzz(func(t *testing.T, method, rid string, payload []byte) {
		if len(payload) > iothub.MaxPayloadBytes {
			return // the hub never forwards more (413)
		}
		fx.mu.Lock()
		defer fx.mu.Unlock()
		fx.n++
		b := fx.broker
		b.take()
		topic := iothub.MethodRequestTopic(method, rid)
		_, wantRID, perr := iothub.ParseMethodRequestTopic(topic)
		if err := b.write(publishPacket(topic, 0, payload)); err != nil {
			t.Fatalf("publish: %v", err)
		}
		if perr == nil && !b.waitReply(wantRID, 20*time.Second) {
			t.Fatalf("topic %q: no reply for $rid %q within 20s", topic, wantRID)
		}
		// A sentinel call proves the session still answers and gives a
		// duplicate reply time to show up.
		var nonce [8]byte
		rand.Read(nonce[:])
		sentinel := "sentinel-" + hex.EncodeToString(nonce[:])
		if err := b.write(publishPacket(iothub.MethodRequestTopic("ping", sentinel), 0, nil)); err != nil {
			t.Fatalf("publish sentinel: %v", err)
		}
		if !b.waitReply(sentinel, 20*time.Second) {
			t.Fatalf("after topic %q: the session no longer answers", topic)
		}
		var mine int
		for _, r := range b.take() {
			_, got, err := iothub.ParseMethodResponseTopic(r.topic)
			if err != nil {
				t.Errorf("reply on a malformed topic %q", r.topic)
				continue
			}
			if got == sentinel {
				continue
			}
			if perr != nil || got != wantRID {
				t.Errorf("topic %q: unexpected reply %q %.200s", topic, r.topic, r.payload)
				continue
			}
			mine++
			if len(r.payload) > iothub.MaxPayloadBytes || !json.Valid(r.payload) {
				t.Errorf("topic %q: reply body of %d bytes is not valid JSON ≤ 128 KB: %.200q", topic, len(r.payload), r.payload)
			}
		}
		if perr == nil && mine != 1 {
			t.Errorf("topic %q: %d replies, want exactly 1", topic, mine)
		}
	})
}
