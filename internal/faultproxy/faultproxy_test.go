package faultproxy

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// ioWait bounds every read and write of these tests.
const ioWait = 10 * time.Second

// target is a TCP server on 127.0.0.1 that hands over each accepted
// connection.
type target struct {
	ln    net.Listener
	conns chan net.Conn
}

func startTarget(t *testing.T) *target {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tg := &target{ln: ln, conns: make(chan net.Conn, 16)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tg.conns <- c
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		close(tg.conns)
		for c := range tg.conns {
			c.Close()
		}
	})
	return tg
}

// accepted waits for the next connection the proxy made to the target.
func (tg *target) accepted(t *testing.T) net.Conn {
	t.Helper()
	select {
	case c := <-tg.conns:
		t.Cleanup(func() { c.Close() })
		return c
	case <-time.After(ioWait):
		t.Fatal("the proxy did not connect to the target")
		return nil
	}
}

// setup starts a target and a proxy in front of it, connects a client and
// returns both ends of the proxied connection.
func setup(t *testing.T, opts Options) (p *Proxy, tg *target, client, server net.Conn) {
	t.Helper()
	tg = startTarget(t)
	p, err := New(tg.ln.Addr().String(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	client = dial(t, p)
	return p, tg, client, tg.accepted(t)
}

func dial(t *testing.T, p *Proxy) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", p.Addr(), ioWait)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func send(t *testing.T, c net.Conn, b []byte) {
	t.Helper()
	if err := c.SetWriteDeadline(time.Now().Add(ioWait)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(b); err != nil {
		t.Fatalf("write: %v", err)
	}
}

func receive(t *testing.T, c net.Conn, n int) []byte {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(ioWait)); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("read %d bytes: %v", n, err)
	}
	return b
}

// closedWithin reports whether c's peer ended the connection (EOF or a
// reset) before d passed.
func closedWithin(c net.Conn, d time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

func TestForwardsBothWays(t *testing.T) {
	p, _, client, server := setup(t, Options{})
	send(t, client, []byte("hello"))
	if got := receive(t, server, 5); string(got) != "hello" {
		t.Errorf("target got %q, want hello", got)
	}
	send(t, server, []byte("world!"))
	if got := receive(t, client, 6); string(got) != "world!" {
		t.Errorf("client got %q, want world!", got)
	}
	if n := p.Accepted(); n != 1 {
		t.Errorf("Accepted = %d, want 1", n)
	}
}

func TestCutClosesBothSides(t *testing.T) {
	p, tg, client, server := setup(t, Options{})
	send(t, client, []byte("x"))
	receive(t, server, 1) // the connection is established end to end
	p.Cut()
	if !closedWithin(client, ioWait) {
		t.Error("client: connection still open after Cut")
	}
	if !closedWithin(server, ioWait) {
		t.Error("target: connection still open after Cut")
	}
	// New connections are served.
	c2 := dial(t, p)
	s2 := tg.accepted(t)
	send(t, c2, []byte("again"))
	if got := receive(t, s2, 5); string(got) != "again" {
		t.Errorf("after Cut, target got %q, want again", got)
	}
}

// TestBlackholeHoldsThenDelivers: nothing arrives while the proxy is a
// black hole; what was held arrives, in order, when it passes again.
func TestBlackholeHoldsThenDelivers(t *testing.T) {
	p, _, client, server := setup(t, Options{})
	p.SetMode(Blackhole)
	send(t, client, []byte("one"))
	send(t, client, []byte("two"))
	// How long "nothing arrives" is observed.
	if err := server.SetReadDeadline(time.Now().Add(300 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if n, err := server.Read(make([]byte, 8)); n > 0 || !isTimeout(err) {
		t.Fatalf("black hole delivered %d bytes (%v), want none", n, err)
	}
	p.SetMode(Pass)
	if got := receive(t, server, 6); string(got) != "onetwo" {
		t.Errorf("after the black hole, target got %q, want onetwo", got)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestDelay: a chunk arrives no sooner than Options.Delay after it was sent.
func TestDelay(t *testing.T) {
	const delay = 150 * time.Millisecond
	p, _, client, server := setup(t, Options{Delay: delay})
	p.SetMode(Delay)
	start := time.Now()
	send(t, client, []byte("late"))
	if got := receive(t, server, 4); string(got) != "late" {
		t.Errorf("target got %q, want late", got)
	}
	if d := time.Since(start); d < delay {
		t.Errorf("delivered after %v, want ≥ %v", d, delay)
	}
}

// TestChunkKeepsBytes: fragmenting never changes the byte stream.
func TestChunkKeepsBytes(t *testing.T) {
	p, _, client, server := setup(t, Options{MaxChunk: 5, Jitter: time.Nanosecond, Seed: 7})
	p.SetMode(Chunk)
	r := rand.New(rand.NewPCG(1, 2))
	want := make([]byte, 8<<10)
	for i := range want {
		want[i] = byte(r.Uint32())
	}
	go func() { _, _ = client.Write(want) }() // the proxy and the reader pace it
	if got := receive(t, server, len(want)); !bytes.Equal(got, want) {
		t.Error("bytes changed in Chunk mode")
	}
}

func TestCloseEndsConnections(t *testing.T) {
	p, _, client, server := setup(t, Options{})
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if !closedWithin(client, ioWait) || !closedWithin(server, ioWait) {
		t.Error("a connection is still open after Close")
	}
	if _, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		t.Error("the proxy still accepts after Close")
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v, want nil", err)
	}
}

func TestModeString(t *testing.T) {
	for m, want := range map[Mode]string{Pass: "pass", Blackhole: "blackhole", Delay: "delay", Chunk: "chunk", Mode(9): "Mode(9)"} {
		if got := m.String(); got != want {
			t.Errorf("Mode(%d).String() = %q, want %q", int(m), got, want)
		}
	}
}

// TestNotLinkedIntoBinary: faultproxy is for test code only; the methodd
// binary must not depend on it.
func TestNotLinkedIntoBinary(t *testing.T) {
	const binary, self = "github.com/methodd/methodd", "github.com/methodd/methodd/internal/faultproxy"
	cmd := exec.Command("go", "list", "-deps", binary)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", binary, err)
	}
	deps := strings.Fields(string(out))
	if !slices.Contains(deps, binary) {
		t.Fatalf("go list -deps %s does not list the binary itself: %q", binary, out)
	}
	if slices.Contains(deps, self) {
		t.Errorf("the methodd binary links %s", self)
	}
}
