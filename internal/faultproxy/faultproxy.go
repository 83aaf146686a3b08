// Package faultproxy is a loopback TCP proxy that injects network faults
// between a client and a server: it holds all traffic (a black hole), adds
// latency, fragments every packet at random byte boundaries, or cuts every
// connection at once. The reliability suite (test/reliability) puts it
// between the daemon and the local hub. Stdlib only; test code only: the
// methodd binary never links it.
package faultproxy

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"time"
)

// Mode is what a Proxy does to the bytes it forwards.
type Mode int

// Proxy modes.
const (
	// Pass forwards bytes as they come.
	Pass Mode = iota
	// Blackhole holds every byte in both directions, on open connections and
	// on new ones (which are accepted but not forwarded), like a network
	// partition that TCP retransmission survives: nothing arrives, nothing
	// is reset, and when the mode ends the held bytes are delivered in order.
	Blackhole
	// Delay delivers every chunk Options.Delay after it was read (latency,
	// not a throughput cap), in order.
	Delay
	// Chunk cuts every chunk into random pieces of 1..Options.MaxChunk bytes
	// written separately (Go sets TCP_NODELAY), each after a random pause of up to
	// Options.Jitter. Bytes inside one TCP stream cannot be reordered without
	// corrupting TLS (which would be a cut, not a reorder); what this mode
	// reorders is the interleaving of the two directions and of concurrent
	// connections, and it breaks every packet at arbitrary byte boundaries.
	Chunk
)

// String is the mode's lower-case name, as in test names and logs.
func (m Mode) String() string {
	switch m {
	case Pass:
		return "pass"
	case Blackhole:
		return "blackhole"
	case Delay:
		return "delay"
	case Chunk:
		return "chunk"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Options configures a Proxy. Zero fields take the defaults named.
type Options struct {
	Delay    time.Duration // latency in Delay mode
	MaxChunk int           // largest piece in Chunk mode (default 7)
	Jitter   time.Duration // largest pause between pieces in Chunk mode (default 2ms)
	Seed     uint64        // seeds the Chunk mode's randomness
}

// Proxy is a loopback TCP proxy that forwards every accepted connection to
// a target address (dialled when the client connects, after any black hole
// ends) and can hold, delay or fragment the traffic, or cut it. It only
// listens on 127.0.0.1. Its methods are safe for concurrent use. It owns
// every goroutine it starts; Close waits for them.
type Proxy struct {
	ln     net.Listener
	target string
	opts   Options

	mu      sync.Mutex
	mode    Mode
	healed  chan struct{} // closed when the mode leaves Blackhole
	conns   map[net.Conn]struct{}
	rng     *rand.Rand
	closed  bool
	wg      sync.WaitGroup
	accepts int
}

// New listens on 127.0.0.1 (a free port) and forwards every connection to
// target in Pass mode until told otherwise. It fails if it cannot listen. A
// connection whose target cannot be dialled (within 5 s) is closed.
func New(target string, opts Options) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("fault proxy: %w", err)
	}
	if opts.MaxChunk <= 0 {
		opts.MaxChunk = 7
	}
	if opts.Jitter <= 0 {
		opts.Jitter = 2 * time.Millisecond
	}
	p := &Proxy{
		ln: ln, target: target, opts: opts,
		healed: make(chan struct{}),
		conns:  make(map[net.Conn]struct{}),
		rng:    rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15)),
	}
	close(p.healed)
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's listen address (127.0.0.1:port), for clients to dial.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Accepted is the number of client connections accepted so far, cut or
// closed ones included.
func (p *Proxy) Accepted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepts
}

// SetMode switches the proxy's behaviour, for open and new connections
// alike, from the next chunk on. Leaving Blackhole delivers what was held,
// in order, and lets held new connections dial the target.
func (p *Proxy) SetMode(m Mode) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if m == Blackhole && p.mode != Blackhole {
		p.healed = make(chan struct{})
	}
	if m != Blackhole && p.mode == Blackhole {
		close(p.healed)
	}
	p.mode = m
}

// Cut closes every open connection at once, on both sides: the client and
// the target each see their connection end (EOF or a reset), as when a NAT
// or firewall drops its state. Bytes not yet delivered are lost. New
// connections are served as before.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
}

// Close stops listening, closes every connection (as Cut does) and waits
// for the proxy's goroutines to end. It returns the listener's close error;
// later calls return nil.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	if p.mode == Blackhole {
		close(p.healed)
		p.mode = Pass
	}
	err := p.ln.Close()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(c) {
			c.Close()
			return
		}
		p.mu.Lock()
		p.accepts++
		p.mu.Unlock()
		p.wg.Add(1)
		go p.serve(c)
	}
}

// track registers c; it reports false when the proxy is closed.
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

// serve dials the target (after any black hole ends) and pipes both ways.
func (p *Proxy) serve(down net.Conn) {
	defer p.wg.Done()
	defer p.untrack(down)
	if !p.waitHealed() {
		return
	}
	up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		return
	}
	if !p.track(up) {
		up.Close()
		return
	}
	defer p.untrack(up)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.pipe(up, down) }()
	go func() { defer wg.Done(); p.pipe(down, up) }()
	wg.Wait()
}

// pipe copies src to dst through the current mode; when either side ends,
// it closes both so the other direction ends too.
func (p *Proxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	q := make(chan chunk, 256)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for c := range q {
			if err := p.deliver(dst, c); err != nil {
				src.Close() // unblock the reader
				for range q {
				}
				return
			}
		}
	}()
	buf := make([]byte, 32*1024)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			q <- chunk{data: append([]byte(nil), buf[:n]...), read: time.Now()}
		}
		if err != nil {
			break
		}
	}
	close(q)
	<-done
}

type chunk struct {
	data []byte
	read time.Time
}

// deliver writes one chunk according to the mode at delivery time.
func (p *Proxy) deliver(dst net.Conn, c chunk) error {
	if !p.waitHealed() {
		return net.ErrClosed
	}
	p.mu.Lock()
	mode, delay := p.mode, p.opts.Delay
	p.mu.Unlock()
	switch mode {
	case Delay:
		if wait := time.Until(c.read.Add(delay)); wait > 0 {
			t := time.NewTimer(wait)
			<-t.C
		}
	case Chunk:
		return p.fragment(dst, c.data)
	}
	_, err := dst.Write(c.data)
	return err
}

// fragment writes data in random pieces with random pauses.
func (p *Proxy) fragment(dst net.Conn, data []byte) error {
	for len(data) > 0 {
		p.mu.Lock()
		n := 1 + p.rng.IntN(p.opts.MaxChunk)
		pause := time.Duration(p.rng.Int64N(int64(p.opts.Jitter) + 1))
		p.mu.Unlock()
		n = min(n, len(data))
		if _, err := dst.Write(data[:n]); err != nil {
			return err
		}
		data = data[n:]
		if pause > 0 && len(data) > 0 {
			t := time.NewTimer(pause)
			<-t.C
		}
	}
	return nil
}

// waitHealed blocks while the proxy is a black hole; it reports false if
// the proxy was closed meanwhile.
func (p *Proxy) waitHealed() bool {
	p.mu.Lock()
	h := p.healed
	p.mu.Unlock()
	<-h
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.closed
}

var _ io.Closer = (*Proxy)(nil)
