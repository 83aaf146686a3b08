package device

import (
	"context"
	"crypto/tls"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/methodd/methodd/internal/logkey"
	"github.com/methodd/methodd/internal/testkit"
	"github.com/methodd/methodd/iothub"
)

// Inputs of the protocol doc's test vectors (§8).
const (
	tvKey    = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
	tvHost   = "myhub.azure-devices.net"
	tvExpiry = 1767225600
	tv1Token = "SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fdevice-1&sig=rdQ00S0jHcECfmDFyIsrhJFEQdh1me1pXfFI7zjuC8Q%3D&se=1767225600"
	tv2Token = "SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fdevice-1%2Fmodules%2Fmodule-a&sig=lmXWX2qbScw2UQ%2Fs7YziFwMG%2BQyPsAE6CyZefIhzmx8%3D&se=1767225600"
)

// handlerFunc adapts a function to Handler.
type handlerFunc func(ctx context.Context, r Request) Response

func (f handlerFunc) HandleMethod(ctx context.Context, r Request) Response { return f(ctx, r) }

// echo answers 200 with the request payload.
var echo = handlerFunc(func(_ context.Context, r Request) Response {
	return Response{Status: 200, Payload: r.Payload}
})

// fixedClock returns a clock stuck at t.
func fixedClock(t time.Time) func() time.Time { return func() time.Time { return t } }

// testConfig is a session config for a fake broker at addr.
func testConfig(b *fakeBroker, device, module string) Config {
	return Config{
		Identity: iothub.ConnectionString{HostName: tvHost, DeviceID: device, ModuleID: module,
			SharedAccessKey: tvKey, GatewayHostName: b.addr()},
		RootCAs:    b.roots,
		BackoffMin: 10 * time.Millisecond,
		BackoffMax: 50 * time.Millisecond,
		Now:        fixedClock(time.Unix(tvExpiry, 0).Add(-time.Hour)),
	}
}

// pipeConfig is a session config for a pipe broker (newPipeBroker), with
// every other field at its default. Its clock is time.Now: inside a
// synctest bubble, the bubble's fake clock.
func pipeConfig(b *fakeBroker) Config {
	return Config{
		Identity: iothub.ConnectionString{HostName: tvHost, DeviceID: "device-1", SharedAccessKey: tvKey},
		openConn: b.dial,
	}
}

// startSession runs a session until the test ends and checks Run's result.
func startSession(t testing.TB, cfg Config, h Handler) (stop func()) {
	t.Helper()
	s, err := New(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	return runSession(t, s)
}

// runSession runs s until the test ends and checks Run's result; stop ends
// it earlier.
func runSession(t testing.TB, s *Session) (stop func()) {
	t.Helper()
	return testkit.Background(t, "Run", s.Run)
}

func TestWireConnectMatchesVectors(t *testing.T) {
	tests := []struct {
		name, device, module   string
		clientID, user, passwd string
	}{
		{"device TV1/TV5", "device-1", "", "device-1", "myhub.azure-devices.net/device-1/?api-version=2021-04-12", tv1Token},
		{"module TV2/TV5", "device-1", "module-a", "device-1/module-a", "myhub.azure-devices.net/device-1/module-a/?api-version=2021-04-12", tv2Token},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newFakeBroker(t)
			startSession(t, testConfig(b, tc.device, tc.module), echo)
			fc := b.next(t)
			cp := fc.connect
			if cp.ClientIdentifier != tc.clientID {
				t.Errorf("client id: got %q, want %q", cp.ClientIdentifier, tc.clientID)
			}
			if cp.Username != tc.user {
				t.Errorf("username: got %q, want %q", cp.Username, tc.user)
			}
			if string(cp.Password) != tc.passwd {
				t.Errorf("password: got %q, want %q", cp.Password, tc.passwd)
			}
			if cp.CleanSession {
				t.Error("clean session: got 1, want 0")
			}
			if cp.ProtocolName != "MQTT" || cp.ProtocolVersion != 4 {
				t.Errorf("protocol: got %s level %d, want MQTT level 4", cp.ProtocolName, cp.ProtocolVersion)
			}
			if cp.Keepalive != uint16(DefaultKeepAlive/time.Second) {
				t.Errorf("keepalive: got %d, want %d", cp.Keepalive, DefaultKeepAlive/time.Second)
			}
			fc.accept(b, 0)
			sub := fc.waitSubscribed(t)
			if len(sub.Topics) != 1 || sub.Topics[0] != iothub.MethodsSubscription || sub.Qoss[0] != 0 {
				t.Errorf("subscribe: got %v qos %v, want [%s] qos [0]", sub.Topics, sub.Qoss, iothub.MethodsSubscription)
			}
		})
	}
}

func TestUsernameCarriesProductInfo(t *testing.T) {
	b := newFakeBroker(t)
	cfg := testConfig(b, "device-1", "")
	cfg.ProductInfo = "methodd/1.0"
	startSession(t, cfg, echo)
	fc := b.next(t)
	want := "myhub.azure-devices.net/device-1/?api-version=2021-04-12&DeviceClientType=methodd%2F1.0"
	if fc.connect.Username != want {
		t.Errorf("username: got %q, want %q", fc.connect.Username, want)
	}
}

func TestFixedSASAndX509Passwords(t *testing.T) {
	t.Run("fixed SAS used as is", func(t *testing.T) {
		b := newFakeBroker(t)
		cfg := testConfig(b, "device-1", "")
		cfg.Identity.SharedAccessKey = ""
		cfg.Identity.SharedAccessSignature = tv1Token
		startSession(t, cfg, echo)
		if got := string(b.next(t).connect.Password); got != tv1Token {
			t.Errorf("password: got %q, want the fixed token", got)
		}
	})
	t.Run("x509 sends no password", func(t *testing.T) {
		b := newFakeBroker(t)
		cfg := testConfig(b, "device-1", "")
		cfg.Identity.SharedAccessKey = ""
		cfg.Identity.X509 = true
		cert, _ := selfSigned(t)
		cfg.ClientCert = &cert
		startSession(t, cfg, echo)
		if cp := b.next(t).connect; cp.PasswordFlag || len(cp.Password) != 0 {
			t.Errorf("password: got flag %v %q, want none", cp.PasswordFlag, cp.Password)
		}
	})
}

func TestRequestsAnsweredOnReplyTopic(t *testing.T) {
	b := newFakeBroker(t)
	startSession(t, testConfig(b, "device-1", ""), handlerFunc(func(_ context.Context, r Request) Response {
		return Response{Status: 201, Payload: []byte(`{"method":"` + r.Method + `","rid":"` + r.RID + `","payload":` + string(r.Payload) + `}`)}
	}))
	fc := b.next(t)
	fc.accept(b, 0)
	fc.waitSubscribed(t)
	// An unparsable topic is ignored; the valid request after it is answered.
	fc.mustRequest(t, "$iothub/methods/POST/broken", []byte(`{}`))
	fc.mustRequest(t, "$iothub/methods/POST/reboot/?$rid=7", []byte(`{"a":1}`))
	p := fc.reply(t)
	if want := "$iothub/methods/res/201/?$rid=7"; p.TopicName != want {
		t.Errorf("reply topic: got %q, want %q", p.TopicName, want)
	}
	if want := `{"method":"reboot","rid":"7","payload":{"a":1}}`; string(p.Payload) != want {
		t.Errorf("reply payload: got %s, want %s", p.Payload, want)
	}
	select {
	case p := <-fc.pubs:
		t.Errorf("unexpected extra publish %q", p.TopicName)
	default:
	}
}

func TestSlowHandlerDoesNotBlockOthers(t *testing.T) {
	b := newFakeBroker(t)
	release := make(chan struct{})
	startSession(t, testConfig(b, "device-1", ""), handlerFunc(func(ctx context.Context, r Request) Response {
		if r.Method == "slow" {
			<-release
		}
		return Response{Status: 200, Payload: []byte(`"` + r.RID + `"`)}
	}))
	fc := b.next(t)
	fc.accept(b, 0)
	fc.waitSubscribed(t)
	fc.mustRequest(t, "$iothub/methods/POST/slow/?$rid=slow", nil)
	for i := range 20 {
		fc.mustRequest(t, iothub.MethodRequestTopic("fast", string(rune('a'+i))), nil)
	}
	for range 20 {
		if p := fc.reply(t); strings.Contains(p.TopicName, "rid=slow") {
			t.Fatal("slow reply arrived before the fast ones")
		}
	}
	close(release)
	if p := fc.reply(t); p.TopicName != "$iothub/methods/res/200/?$rid=slow" {
		t.Errorf("got %q, want the slow reply", p.TopicName)
	}
}

func TestBusyGets503(t *testing.T) {
	b := newFakeBroker(t)
	cfg := testConfig(b, "device-1", "")
	cfg.MaxInFlight = 1
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	startSession(t, cfg, handlerFunc(func(ctx context.Context, r Request) Response {
		started <- struct{}{}
		<-release
		return Response{Status: 200, Payload: []byte(`1`)}
	}))
	fc := b.next(t)
	fc.accept(b, 0)
	fc.waitSubscribed(t)
	fc.mustRequest(t, "$iothub/methods/POST/m/?$rid=1", nil)
	<-started
	fc.mustRequest(t, "$iothub/methods/POST/m/?$rid=2", nil)
	if p := fc.reply(t); p.TopicName != "$iothub/methods/res/503/?$rid=2" {
		t.Errorf("got %q, want a 503 for rid 2", p.TopicName)
	}
	close(release)
	if p := fc.reply(t); p.TopicName != "$iothub/methods/res/200/?$rid=1" {
		t.Errorf("got %q, want 200 for rid 1", p.TopicName)
	}
}

// logSink records log records, for the tests that check a line the session
// must log by its level and attributes (logkey constants: the log's
// contract), never by its wording.
type logSink struct {
	ch chan slog.Record
}

func newLogSink() *logSink { return &logSink{ch: make(chan slog.Record, 256)} }

func (l *logSink) Enabled(context.Context, slog.Level) bool { return true }
func (l *logSink) Handle(_ context.Context, r slog.Record) error {
	select {
	case l.ch <- r.Clone():
	default:
	}
	return nil
}
func (l *logSink) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logSink) WithGroup(string) slog.Handler      { return l }

// waitFor waits for a record at level whose attributes hold want (key →
// value as text; "" matches any value).
func (l *logSink) waitFor(t *testing.T, level slog.Level, want map[string]string) slog.Record {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case r := <-l.ch:
			if r.Level == level && hasAttrs(r, want) {
				return r
			}
		case <-deadline:
			t.Fatalf("no %v record with %v within 20s", level, want)
			return slog.Record{}
		}
	}
}

// attrValue returns the value of r's attribute key.
func attrValue(r slog.Record, key string) (v slog.Value, ok bool) {
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == key {
			v, ok = a.Value, true
			return false
		}
		return true
	})
	return v, ok
}

// hasAttrs reports whether r's attributes hold want (key → value as text;
// "" matches any value).
func hasAttrs(r slog.Record, want map[string]string) bool {
	found := 0
	r.Attrs(func(a slog.Attr) bool {
		if v, ok := want[a.Key]; ok && (v == "" || v == a.Value.String()) {
			found++
		}
		return true
	})
	return found == len(want)
}

func TestReplyForLostConnectionIsDropped(t *testing.T) {
	b := newFakeBroker(t)
	cfg := testConfig(b, "device-1", "")
	sink := newLogSink()
	cfg.Logger = slog.New(sink)
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	var released sync.Map             // rid → number of Release calls
	releases := make(chan string, 16) // the rid of every Release call
	startSession(t, cfg, handlerFunc(func(ctx context.Context, r Request) Response {
		if r.Method == "slow" {
			started <- struct{}{}
			<-release
		}
		n := new(atomic.Int32)
		released.Store(r.RID, n)
		return Response{Status: 200, Payload: []byte(`"` + r.RID + `"`), Release: func() { n.Add(1); releases <- r.RID }}
	}))
	fc1 := b.next(t)
	fc1.accept(b, 0)
	fc1.waitSubscribed(t)
	fc1.mustRequest(t, "$iothub/methods/POST/slow/?$rid=old", nil)
	<-started
	fc1.conn.Close() // the network drops
	fc2 := b.next(t)
	fc2.accept(b, 0)
	fc2.waitSubscribed(t)
	close(release)
	// The drop is logged once, as a warning naming the call and why.
	sink.waitFor(t, slog.LevelWarn, map[string]string{logkey.RequestID: "old", logkey.Reason: ""})
	fc2.mustRequest(t, "$iothub/methods/POST/fast/?$rid=new", nil)
	if p := fc2.reply(t); p.TopicName != "$iothub/methods/res/200/?$rid=new" {
		t.Errorf("got %q on the new connection, want only the new call's reply", p.TopicName)
	}
	// A written reply is released once, right after its write; a dropped
	// one never is (its drop was logged above).
	count := func(rid string) int32 {
		n, ok := released.Load(rid)
		if !ok {
			t.Fatalf("no reply made for %s", rid)
		}
		return n.(*atomic.Int32).Load()
	}
	select {
	case rid := <-releases:
		if rid != "new" {
			t.Fatalf("reply %s released, want only the written reply (new)", rid)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the written reply was not released within 10s")
	}
	if n := count("new"); n != 1 {
		t.Errorf("written reply released %d times, want 1", n)
	}
	if n := count("old"); n != 0 {
		t.Errorf("dropped reply released %d times, want 0", n)
	}
}

func TestRenewalReconnectsWithFreshTokenAndForwardsReplies(t *testing.T) {
	b := newFakeBroker(t)
	cfg := testConfig(b, "device-1", "")
	cfg.SASTTL = 2 * time.Second // renew after 1.6s; tokens differ in se
	cfg.Now = time.Now
	var states []State
	var smu sync.Mutex
	renewed := make(chan struct{}) // closed at Connected with Renewal for conn 2
	cfg.OnState = func(s State) {
		smu.Lock()
		defer smu.Unlock()
		states = append(states, s)
		if s.Kind == Connected && s.Renewal && s.Conn == 2 {
			close(renewed)
		}
	}
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	var released sync.Map // rid → number of Release calls
	startSession(t, cfg, handlerFunc(func(ctx context.Context, r Request) Response {
		if r.Method == "slow" {
			started <- struct{}{}
			<-release
		}
		n := new(atomic.Int32)
		released.Store(r.RID, n)
		return Response{Status: 200, Payload: []byte(`"` + r.RID + `"`), Release: func() { n.Add(1) }}
	}))
	fc1 := b.next(t)
	fc1.accept(b, 0)
	fc1.waitSubscribed(t)
	fc1.mustRequest(t, "$iothub/methods/POST/slow/?$rid=inflight", nil)
	<-started
	fc2 := b.next(t) // the renewal's CONNECT
	if string(fc2.connect.Password) == string(fc1.connect.Password) {
		t.Error("renewal reused the old token")
	}
	if fc2.connect.CleanSession {
		t.Error("renewal used clean session 1")
	}
	fc1.conn.Close() // the hub drops the old connection on the new CONNECT
	fc2.accept(b, 0)
	fc2.waitSubscribed(t)
	later := b.acceptAll(t) // further renewals
	close(release)
	select {
	case p := <-fc2.pubs:
		if p.TopicName != "$iothub/methods/res/200/?$rid=inflight" {
			t.Errorf("got %q, want the in-flight reply forwarded to the renewed connection", p.TopicName)
		}
	case p := <-later:
		if p.TopicName != "$iothub/methods/res/200/?$rid=inflight" {
			t.Errorf("got %q, want the in-flight reply forwarded to a renewed connection", p.TopicName)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("in-flight reply not forwarded within 20s")
	}
	// The forwarded reply can overtake the Connected state, which is
	// emitted after the new connection's SUBACK: wait for it.
	select {
	case <-renewed:
	case <-time.After(10 * time.Second):
		smu.Lock()
		seen := append([]State(nil), states...)
		smu.Unlock()
		t.Fatalf("states %v: want Connected with Renewal for conn 2 within 10s", seen)
	}
}

func TestShutdownDrainsAndRefusesNewCalls(t *testing.T) {
	b := newFakeBroker(t)
	cfg := testConfig(b, "device-1", "")
	connected := make(chan struct{}, 1)
	cfg.OnState = func(st State) {
		if st.Kind == Connected {
			select {
			case connected <- struct{}{}:
			default:
			}
		}
	}
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	stop := startSession(t, cfg, handlerFunc(func(ctx context.Context, r Request) Response {
		started <- struct{}{}
		<-release
		return Response{Status: 200, Payload: []byte(`"done"`)}
	}))
	fc := b.next(t)
	fc.accept(b, 0)
	fc.waitSubscribed(t)
	// The premise is a connected session: wait until it has processed the
	// SUBACK, not only until the broker sent it (under load a request sent
	// in between left the session inside connect(), where stop() aborts the
	// connection instead of draining it).
	select {
	case <-connected:
	case <-time.After(20 * time.Second):
		t.Fatal("session not connected within 20s")
	}
	fc.mustRequest(t, "$iothub/methods/POST/m/?$rid=1", nil)
	<-started
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	// Calls arriving while draining are refused at once. The session may
	// not have seen the cancellation yet: retry until one is refused.
	var refused bool
	for i := 0; !refused && i < 200; i++ {
		fc.mustRequest(t, iothub.MethodRequestTopic("m", "late"), nil)
		select {
		case p := <-fc.pubs:
			refused = p.TopicName == "$iothub/methods/res/503/?$rid=late"
		case <-started: // taken before the cancellation: let it finish later
			go func() { <-release }()
		case <-time.After(50 * time.Millisecond):
		}
	}
	if !refused {
		t.Error("no 503 for a call made while draining")
	}
	select {
	case <-stopped:
		t.Fatal("Run returned before the in-flight call finished")
	default:
	}
	close(release)
	got := false
	for !got {
		select {
		case p := <-fc.pubs:
			got = p.TopicName == "$iothub/methods/res/200/?$rid=1"
		case <-time.After(20 * time.Second):
			t.Fatal("in-flight call not answered during drain")
		}
	}
	<-stopped
}

func TestDrainTimeoutCancelsHandlers(t *testing.T) {
	b := newFakeBroker(t)
	cfg := testConfig(b, "device-1", "")
	cfg.DrainTimeout = 100 * time.Millisecond
	started := make(chan struct{}, 1)
	stop := startSession(t, cfg, handlerFunc(func(ctx context.Context, r Request) Response {
		started <- struct{}{}
		<-ctx.Done()
		return Response{Status: 504, Payload: []byte(`"cancelled"`)}
	}))
	fc := b.next(t)
	fc.accept(b, 0)
	fc.waitSubscribed(t)
	fc.mustRequest(t, "$iothub/methods/POST/m/?$rid=1", nil)
	<-started
	stop() // fails the test if Run does not return
	if p := fc.reply(t); p.TopicName != "$iothub/methods/res/504/?$rid=1" {
		t.Errorf("got %q, want the cancelled call's reply", p.TopicName)
	}
}

func TestBackoff(t *testing.T) {
	for _, r := range []float64{0, 0.5, 0.999} {
		b := backoff{min: 100 * time.Millisecond, max: time.Second, rand: func() float64 { return r }}
		steps := []time.Duration{100, 200, 400, 800, 1000, 1000, 1000}
		for n, step := range steps {
			step *= time.Millisecond
			d := b.delay(n)
			if d < step/2 || d > step {
				t.Errorf("rand %v attempt %d: got %v, want in [%v, %v]", r, n, d, step/2, step)
			}
		}
	}
	b := newBackoff(time.Second, time.Minute)
	if d := b.delay(1000); d > time.Minute {
		t.Errorf("attempt 1000: got %v, want ≤ 1m", d)
	}
}

func TestBrokerURLAndServerName(t *testing.T) {
	tests := []struct {
		name, host, gateway, transport string
		url, server                    string
	}{
		{"mqtt default port", "hub.example", "", "", "tls://hub.example:8883", "hub.example"},
		{"mqtt gateway with port", "hub.example", "localhost:1234", "mqtt", "tls://localhost:1234", "localhost"},
		{"ws default port", "hub.example", "", "mqtt-ws", "wss://hub.example:443/$iothub/websocket", "hub.example"},
		{"ws gateway with port", "hub.example", "127.0.0.1:9443", "mqtt-ws", "wss://127.0.0.1:9443/$iothub/websocket", "127.0.0.1"},
		{"ipv6 gateway", "hub.example", "[::1]:8883", "mqtt", "tls://[::1]:8883", "::1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Config{Identity: iothub.ConnectionString{HostName: tc.host, DeviceID: "d",
				SharedAccessKey: tvKey, GatewayHostName: tc.gateway}, Transport: tc.transport}.withDefaults()
			if err != nil {
				t.Fatal(err)
			}
			if got := c.brokerURL(); got != tc.url {
				t.Errorf("broker: got %q, want %q", got, tc.url)
			}
			if got := c.tlsConfig().ServerName; got != tc.server {
				t.Errorf("server name: got %q, want %q", got, tc.server)
			}
		})
	}
}

func TestConfigValidation(t *testing.T) {
	ok := iothub.ConnectionString{HostName: "h", DeviceID: "d", SharedAccessKey: tvKey}
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no host", Config{Identity: iothub.ConnectionString{DeviceID: "d", SharedAccessKey: tvKey}}, "HostName"},
		{"no credential", Config{Identity: iothub.ConnectionString{HostName: "h", DeviceID: "d"}}, "no SharedAccessKey"},
		{"bad key", Config{Identity: iothub.ConnectionString{HostName: "h", DeviceID: "d", SharedAccessKey: "!!"}}, "SharedAccessKey"},
		{"bad sas", Config{Identity: iothub.ConnectionString{HostName: "h", DeviceID: "d", SharedAccessSignature: "x"}}, "SharedAccessSignature"},
		{"x509 without cert", Config{Identity: iothub.ConnectionString{HostName: "h", DeviceID: "d", X509: true}}, "client certificate"},
		{"bad transport", Config{Identity: ok, Transport: "amqp"}, "transport"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg, echo)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error mentioning %q", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), tvKey) {
				t.Errorf("error leaks the key: %v", err)
			}
		})
	}
	if _, err := New(Config{Identity: ok}, nil); err == nil {
		t.Error("nil handler accepted")
	}
}

func TestFixedTokenWarning(t *testing.T) {
	now := time.Unix(1000, 0)
	if w := fixedTokenWarning(credentials{expiry: now.Add(100 * time.Second)}, now); !w.Equal(now.Add(80 * time.Second)) {
		t.Errorf("got %v, want 80s after now", w.Sub(now))
	}
	if w := fixedTokenWarning(credentials{expiry: now.Add(1000 * time.Hour)}, now); !w.Equal(now.Add(976 * time.Hour)) {
		t.Errorf("got %v, want a day before expiry", w.Sub(now))
	}
	if w := fixedTokenWarning(credentials{expiry: now.Add(time.Hour), renewAt: now}, now); !w.IsZero() {
		t.Error("renewable token got a warning time")
	}
}

var _ = tls.VersionTLS12
