package device

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/methodd/methodd/iothub"
)

// fakeBroker is a raw TLS listener that speaks just enough MQTT for unit
// tests: it hands every CONNECT to the test, which decides the CONNACK,
// acknowledges SUBSCRIBE and PINGREQ itself, and records PUBLISHes.
type fakeBroker struct {
	t     testing.TB
	ln    net.Listener
	roots *x509.CertPool
	conns chan *fakeConn
	wg    sync.WaitGroup
}

// fakeConn is one client connection seen by the fake broker.
type fakeConn struct {
	conn    net.Conn
	connect *packets.ConnectPacket
	wmu     sync.Mutex
	pubs    chan *packets.PublishPacket // PUBLISHes from the client
	subs    chan *packets.SubscribePacket
	closed  chan struct{}

	// Set before accept, read by the connection's goroutine after.
	refuse map[string]bool // topic filters whose SUBACK return code is 0x80
	twin   twinAnswer      // answers twin requests; nil answers none
}

// twinAnswer decides the hub's answer to one twin request: its status,
// the $version of the response topic (0: none) and the body; ok false
// sends no answer at all.
type twinAnswer func(rid string, body []byte) (status int, version int64, answer []byte, ok bool)

// newFakeBroker listens on 127.0.0.1:0 with a fresh self-signed certificate
// for 127.0.0.1 and localhost.
func newFakeBroker(t testing.TB) *fakeBroker {
	t.Helper()
	cert, roots := selfSigned(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	b := &fakeBroker{t: t, ln: ln, roots: roots, conns: make(chan *fakeConn, 16)}
	b.wg.Add(1)
	go b.accept()
	t.Cleanup(func() {
		ln.Close()
		b.wg.Wait()
	})
	return b
}

func (b *fakeBroker) addr() string { return b.ln.Addr().String() }

func (b *fakeBroker) accept() {
	defer b.wg.Done()
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		b.wg.Add(1)
		go b.serveConnect(c)
	}
}

// serveConnect reads c's CONNECT and hands the connection to the test.
func (b *fakeBroker) serveConnect(c net.Conn) {
	defer b.wg.Done()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	p, err := packets.ReadPacket(c)
	if err != nil {
		c.Close()
		return
	}
	cp, ok := p.(*packets.ConnectPacket)
	if !ok {
		c.Close()
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	fc := &fakeConn{conn: c, connect: cp, pubs: make(chan *packets.PublishPacket, 1024),
		subs: make(chan *packets.SubscribePacket, 16), closed: make(chan struct{})}
	b.conns <- fc
}

// newPipeBroker is a fake broker without a listener: a session whose
// Config.openConn is its dial connects to it in memory, over net.Pipe, and
// so can run inside a synctest bubble (no real network I/O, which is never
// durably blocking).
func newPipeBroker(t testing.TB) *fakeBroker {
	t.Helper()
	b := &fakeBroker{t: t, conns: make(chan *fakeConn, 16)}
	t.Cleanup(b.wg.Wait)
	return b
}

// dial connects a client to a pipe broker; it is a Config.openConn.
func (b *fakeBroker) dial(*url.URL, mqtt.ClientOptions) (net.Conn, error) {
	client, server := net.Pipe()
	b.wg.Add(1)
	go b.serveConnect(server)
	return client, nil
}

// next waits for the next CONNECT.
func (b *fakeBroker) next(t testing.TB) *fakeConn {
	t.Helper()
	return b.nextWithin(t, 20*time.Second)
}

// nextWithin waits for the next CONNECT, at most d.
func (b *fakeBroker) nextWithin(t testing.TB, d time.Duration) *fakeConn {
	t.Helper()
	select {
	case c := <-b.conns:
		t.Cleanup(func() { c.conn.Close() })
		return c
	case <-time.After(d):
		t.Fatalf("no CONNECT within %v", d)
		return nil
	}
}

// accept answers the CONNECT with return code rc and, if rc is 0, serves
// the connection: SUBACK (granting QoS 0), PINGRESP, and PUBLISHes queued
// on pubs.
func (fc *fakeConn) accept(b *fakeBroker, rc byte) {
	ack := packets.NewControlPacket(packets.Connack).(*packets.ConnackPacket)
	ack.ReturnCode = rc
	_ = fc.write(ack)
	if rc != 0 {
		fc.conn.Close()
		close(fc.closed)
		return
	}
	b.wg.Go(func() {
		defer close(fc.closed)
		defer fc.conn.Close()
		for {
			p, err := packets.ReadPacket(fc.conn)
			if err != nil {
				return
			}
			switch p := p.(type) {
			case *packets.SubscribePacket:
				sa := packets.NewControlPacket(packets.Suback).(*packets.SubackPacket)
				sa.MessageID = p.MessageID
				sa.ReturnCodes = make([]byte, len(p.Topics))
				for i, topic := range p.Topics {
					if fc.refuse[topic] {
						sa.ReturnCodes[i] = 0x80
					}
				}
				_ = fc.write(sa)
				fc.subs <- p
			case *packets.PingreqPacket:
				_ = fc.write(packets.NewControlPacket(packets.Pingresp))
			case *packets.PublishPacket:
				fc.pubs <- p
				fc.answerTwin(p)
			case *packets.DisconnectPacket:
				return
			}
		}
	})
}

func (fc *fakeConn) write(p packets.ControlPacket) error {
	fc.wmu.Lock()
	defer fc.wmu.Unlock()
	return p.Write(fc.conn)
}

// answerTwin answers p as fc.twin decides, if p is a twin request.
func (fc *fakeConn) answerTwin(p *packets.PublishPacket) {
	if fc.twin == nil || !iothub.IsTwinRequestTopic(p.TopicName) {
		return
	}
	_, rid, _, err := iothub.ParseTwinRequestTopic(p.TopicName)
	if err != nil {
		return
	}
	if status, version, body, ok := fc.twin(rid, p.Payload); ok {
		_ = fc.request(iothub.TwinResponseTopic(status, rid, version), body)
	}
}

// request publishes a method request to the client (QoS 0).
func (fc *fakeConn) request(topic string, payload []byte) error {
	p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	p.TopicName = topic
	p.Payload = payload
	return fc.write(p)
}

// mustRequest is request from the test's goroutine: a failed write fails
// the test.
func (fc *fakeConn) mustRequest(t testing.TB, topic string, payload []byte) {
	t.Helper()
	if err := fc.request(topic, payload); err != nil {
		t.Fatalf("publish %s: %v", topic, err)
	}
}

// waitSubscribed waits for the client's SUBSCRIBE (already acknowledged).
func (fc *fakeConn) waitSubscribed(t testing.TB) *packets.SubscribePacket {
	t.Helper()
	select {
	case s := <-fc.subs:
		return s
	case <-time.After(20 * time.Second):
		t.Fatal("no SUBSCRIBE within 20s")
		return nil
	}
}

// reply waits for the next PUBLISH from the client.
func (fc *fakeConn) reply(t testing.TB) *packets.PublishPacket {
	t.Helper()
	select {
	case p := <-fc.pubs:
		return p
	case <-time.After(20 * time.Second):
		t.Fatal("no reply within 20s")
		return nil
	}
}

// acceptAll accepts every further CONNECT and forwards the PUBLISHes of
// all those connections to the returned channel.
func (b *fakeBroker) acceptAll(t testing.TB) <-chan *packets.PublishPacket {
	pubs := make(chan *packets.PublishPacket, 1024)
	stop := make(chan struct{})
	b.wg.Go(func() {
		for {
			select {
			case fc := <-b.conns:
				fc.pubs = pubs
				fc.accept(b, 0)
				t.Cleanup(func() { fc.conn.Close() })
			case <-stop:
				return
			}
		}
	})
	t.Cleanup(func() { close(stop) })
	return pubs
}

// selfSigned makes a certificate for 127.0.0.1 and localhost and a pool
// that trusts it.
func selfSigned(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "localhost"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}
