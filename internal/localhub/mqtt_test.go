package localhub_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/methodd/methodd/internal/localhub"
	"github.com/methodd/methodd/iothub"
)

// otherKey is a valid base64 key that is nobody's.
const otherKey = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

// TestConnectRefused: every bad login is CONNACK 5, reported with its
// reason, and the identity's live session is neither kicked nor disturbed.
func TestConnectRefused(t *testing.T) {
	th := startHub(t, localhub.Options{Devices: []string{"dev1", "dev2"}})
	live := th.mustConnect(t, "dev1")
	live.subscribe(t, 0, echo)
	start := th.events.mark()
	good := th.creds(t, "dev1", time.Hour)
	sign := func(resource, key string, ttl time.Duration) string {
		tok, err := iothub.Sign(resource, key, "", time.Now().Add(ttl))
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	cases := []struct {
		name string
		edit func(*deviceCreds)
		want error // the refusal's reason (Event.Err)
	}{
		{"wrong device key", func(c *deviceCreds) { c.password = sign("localhost/devices/dev1", otherKey, time.Hour) }, iothub.ErrSASSignature},
		{"expired token", func(c *deviceCreds) {
			cs, _ := iothub.ParseDeviceConnectionString(th.Info().Devices["dev1"])
			c.password = sign("localhost/devices/dev1", cs.SharedAccessKey, -time.Minute)
		}, iothub.ErrSASExpired},
		{"token for another device", func(c *deviceCreds) {
			cs, _ := iothub.ParseDeviceConnectionString(th.Info().Devices["dev1"])
			c.password = sign("localhost/devices/dev2", cs.SharedAccessKey, time.Hour)
		}, iothub.ErrSASAudience},
		{"token for another hub", func(c *deviceCreds) {
			cs, _ := iothub.ParseDeviceConnectionString(th.Info().Devices["dev1"])
			c.password = sign("otherhub/devices/dev1", cs.SharedAccessKey, time.Hour)
		}, iothub.ErrSASAudience},
		// One more base64 character: the signature no longer decodes.
		{"tampered signature", func(c *deviceCreds) { c.password = strings.Replace(c.password, "sig=", "sig=A", 1) }, iothub.ErrSASMalformed},
		{"not a SAS token", func(c *deviceCreds) { c.password = "secret" }, iothub.ErrSASMalformed},
		{"no password", func(c *deviceCreds) { c.password = "" }, localhub.ErrNoPassword},
		{"policy without DeviceConnect", func(c *deviceCreds) {
			svc, _ := iothub.ParseServiceConnectionString(th.info.ServiceConnectionString)
			tok, err := iothub.Sign("localhost/devices/dev1", svc.SharedAccessKey, "service", time.Now().Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			c.password = tok
		}, localhub.ErrPolicy},
		{"no api-version in username", func(c *deviceCreds) { c.username = "localhost/dev1/" }, localhub.ErrUsername},
		{"username for another host", func(c *deviceCreds) { c.username = "otherhub/dev1/?api-version=2021-04-12" }, localhub.ErrUsername},
		{"client id differs from username", func(c *deviceCreds) { c.username = "localhost/dev2/?api-version=2021-04-12" }, localhub.ErrClientID},
		{"unregistered device", func(c *deviceCreds) {
			c.clientID, c.username = "ghost", "localhost/ghost/?api-version=2021-04-12"
		}, localhub.ErrUnknownIdentity},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.edit(&c)
			mark := th.events.mark()
			_, err := th.connect(t, c, nil)
			if !errors.Is(err, packets.ErrorRefusedNotAuthorised) {
				t.Fatalf("connect error %v, want CONNACK 5 (%v)", err, packets.ErrorRefusedNotAuthorised)
			}
			e := th.events.wait(t, mark, "the refusal of "+c.clientID, is(localhub.EventConnRefused, c.clientID))
			if e.ReturnCode != localhub.ReturnCodeNotAuthorized || !errors.Is(e.Err, tc.want) {
				t.Errorf("refusal reported with return code %d, reason %v; want %d, %v", e.ReturnCode, e.Err, localhub.ReturnCodeNotAuthorized, tc.want)
			}
		})
	}
	if r := th.invoke(t, "dev1", "", iothub.MethodRequest{MethodName: "ping"}); r.status != 200 {
		t.Fatalf("live session after refused logins: status %d %s", r.status, r.body)
	}
	select {
	case err := <-live.lost:
		t.Fatalf("live session was disconnected: %v", err)
	default:
	}
	th.events.none(t, start, "end of the live session", func(e localhub.Event) bool {
		return e.ClientID == "dev1" && (e.Kind == localhub.EventKicked || e.Kind == localhub.EventDisconnected)
	})
	if strings.Contains(th.logs.String(), "sig=") {
		t.Error("a token leaked into the logs")
	}
}

// TestUsernameForms: the forms SDKs use are accepted (§3.2).
func TestUsernameForms(t *testing.T) {
	th := startHub(t, localhub.Options{})
	for _, u := range []string{
		"localhost/dev1/?api-version=2021-04-12",
		"localhost/dev1/?api-version=2020-09-30&DeviceClientType=iothubclient%2f1.2.8%20(native%3b%20x)",
		"localhost/dev1/api-version=2020-09-30", // amenzhinsky, old C
		"LOCALHOST/dev1/?api-version=2021-04-12",
		"localhost:8883/dev1/?api-version=2021-04-12",
	} {
		c := th.creds(t, "dev1", time.Hour)
		c.username = u
		d, err := th.connect(t, c, nil)
		if err != nil {
			t.Errorf("username %q: %v", u, err)
			continue
		}
		d.c.Disconnect(0)
	}
}

// TestTokenForms: tokens with an unencoded sr (C SDK) and with a port in the
// audience are accepted; the signature is verified over sr as sent.
func TestTokenForms(t *testing.T) {
	th := startHub(t, localhub.Options{})
	cs, _ := iothub.ParseDeviceConnectionString(th.Info().Devices["dev1"])
	c := th.creds(t, "dev1", time.Hour)
	tok, err := iothub.Sign("localhost:1234/devices/dev1", cs.SharedAccessKey, "", time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	c.password = tok
	d, err := th.connect(t, c, nil)
	if err != nil {
		t.Fatalf("audience with port: %v", err)
	}
	d.c.Disconnect(0)
}

// TestNewConnectionKicksOld: one live connection per identity (§3.1).
func TestNewConnectionKicksOld(t *testing.T) {
	th := startHub(t, localhub.Options{})
	first := th.mustConnect(t, "dev1")
	first.subscribe(t, 0, func(request) (int, []byte, bool) { return 500, []byte(`"old"`), true })
	mark := th.events.mark()
	second := th.mustConnect(t, "dev1")
	_ = first.waitLost(t)
	th.events.wait(t, mark, "the kick", is(localhub.EventKicked, "dev1"))
	th.events.wait(t, mark, "the old connection's end", isErr(localhub.EventDisconnected, "dev1", localhub.ErrKicked))
	second.subscribe(t, 0, func(request) (int, []byte, bool) { return 200, []byte(`"new"`), true })
	r := th.invoke(t, "dev1", "", iothub.MethodRequest{MethodName: "who"})
	if string(r.body) != `{"status":200,"payload":"new"}` {
		t.Fatalf("got %d %s, want the new connection's reply", r.status, r.body)
	}
}

// TestForbiddenTrafficDisconnects: anything outside the IoT Hub topics ends
// the connection, as the real hub does (§3.3).
func TestForbiddenTrafficDisconnects(t *testing.T) {
	th := startHub(t, localhub.Options{Devices: []string{"dev1", "dev2"}})
	publish := func(topic string, qos byte) func(paho.Client) paho.Token {
		return func(c paho.Client) paho.Token { return c.Publish(topic, qos, false, []byte(`{}`)) }
	}
	subscribe := func(filters ...string) func(paho.Client) paho.Token {
		return func(c paho.Client) paho.Token {
			m := map[string]byte{}
			for _, f := range filters {
				m[f] = 0
			}
			return c.SubscribeMultiple(m, nil)
		}
	}
	cases := []struct {
		name string
		do   func(paho.Client) paho.Token
	}{
		{"publish to an arbitrary topic", publish("foo/bar", 0)},
		{"publish to another device's telemetry", publish("devices/dev2/messages/events/", 0)},
		{"publish at QoS 2", publish(iothub.MethodResponseTopic(200, "1"), 2)},
		{"publish a malformed method reply", publish("$iothub/methods/res/abc/?$rid=1", 0)},
		{"publish QoS 1 to an arbitrary topic", publish("foo", 1)},
		{"subscribe to #", subscribe("#")},
		{"subscribe with another wildcard", subscribe("$iothub/methods/POST/+")},
		{"subscribe to another device's messages", subscribe("devices/dev2/messages/devicebound/#")},
		{"subscribe to $SYS", subscribe("$SYS/#")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := th.mustConnect(t, "dev1")
			mark := th.events.mark()
			tc.do(d.c).WaitTimeout(time.Second) // may never complete: the hub hangs up
			_ = d.waitLost(t)
			th.events.wait(t, mark, "the hub to end the connection as forbidden", isErr(localhub.EventDisconnected, "dev1", localhub.ErrForbidden))
		})
	}
}

// TestAllowedTrafficKeepsConnection: telemetry, QoS 1 replies, QoS 2
// subscriptions (granted QoS 1) and the documented filters are fine.
func TestAllowedTrafficKeepsConnection(t *testing.T) {
	th := startHub(t, localhub.Options{})
	d := th.mustConnect(t, "dev1")
	tok := d.c.SubscribeMultiple(map[string]byte{
		"$iothub/twin/res/#":                      0,
		"$iothub/twin/PATCH/properties/desired/#": 1,
		"devices/dev1/messages/devicebound/#":     1,
	}, nil)
	if !tok.WaitTimeout(waitFor) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	for _, topic := range []string{"devices/dev1/messages/events/", "devices/dev1/messages/events/a=b", "devices/dev1/messages/events"} {
		if tok := d.c.Publish(topic, 1, false, []byte("t")); !tok.WaitTimeout(waitFor) || tok.Error() != nil {
			t.Fatalf("telemetry %q: %v", topic, tok.Error())
		}
	}
	sub := d.c.Subscribe(iothub.MethodsSubscription, 2, nil)
	if !sub.WaitTimeout(waitFor) || sub.Error() != nil {
		t.Fatalf("subscribe QoS 2: %v", sub.Error())
	}
	if got := sub.(*paho.SubscribeToken).Result()[iothub.MethodsSubscription]; got != 1 {
		t.Errorf("QoS 2 subscription granted %d, want 1", got)
	}
	d.setHandler(t, func(r request) (int, []byte, bool) { return 200, r.payload, true }, nil)
	if r := th.invoke(t, "dev1", "", iothub.MethodRequest{MethodName: "m", Payload: []byte(`1`)}); r.status != 200 {
		t.Fatalf("invoke: %d %s", r.status, r.body)
	}
	select {
	case err := <-d.lost:
		t.Fatalf("disconnected by allowed traffic: %v", err)
	default:
	}
}

// TestPersistentSession: with clean session 0 the methods subscription
// survives a reconnect without a new SUBSCRIBE (the Node SDK renews its SAS
// that way, §9); with Faults.ForgetSubscriptions, or clean session 1, it
// does not.
func TestPersistentSession(t *testing.T) {
	cases := []struct {
		name     string
		faults   localhub.Faults
		clean    bool
		wantCode int // 0 = success
	}{
		{"clean session 0 keeps the subscription", localhub.Faults{}, false, 0},
		{"fault ForgetSubscriptions", localhub.Faults{ForgetSubscriptions: true}, false, iothub.CodeDeviceNotOnline},
		{"clean session 1 drops the subscription", localhub.Faults{}, true, iothub.CodeDeviceNotOnline},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			th := startHub(t, localhub.Options{Faults: tc.faults})
			clean := func(o *paho.ClientOptions) { o.SetCleanSession(tc.clean) }
			first, err := th.connect(t, th.creds(t, "dev1", time.Hour), clean)
			if err != nil {
				t.Fatal(err)
			}
			first.subscribe(t, 0, echo)
			mark := th.events.mark()
			first.c.Disconnect(100)
			th.events.wait(t, mark, "the hub to see the device disconnect", is(localhub.EventDisconnected, "dev1"))
			wantError(t, th.invoke(t, "dev1", "", iothub.MethodRequest{MethodName: "m"}), iothub.CodeDeviceNotOnline)
			// Reconnect with a fresh token and no SUBSCRIBE.
			second, err := th.connect(t, th.creds(t, "dev1", time.Hour), clean)
			if err != nil {
				t.Fatal(err)
			}
			second.setHandler(t, echo, nil)
			r := th.invoke(t, "dev1", "", iothub.MethodRequest{MethodName: "m", Payload: []byte(`"x"`)})
			if tc.wantCode == 0 {
				if string(r.body) != `{"status":200,"payload":"x"}` {
					t.Fatalf("got %d %s, want the inherited subscription to deliver", r.status, r.body)
				}
				return
			}
			wantError(t, r, tc.wantCode)
		})
	}
}

// TestExpiredTokenDisconnects: a token expiring on a live connection ends
// it, reported with the token's expiry.
func TestExpiredTokenDisconnects(t *testing.T) {
	th := startHub(t, localhub.Options{})
	start := time.Now()
	c := th.creds(t, "dev1", 2*time.Second)
	tok, err := iothub.ParseSAS(c.password)
	if err != nil {
		t.Fatal(err)
	}
	d, err := th.connect(t, c, nil)
	if err != nil {
		t.Fatalf("connect with a short-lived token: %v", err)
	}
	_ = d.waitLost(t) // bounded by waitFor: a hub that never enforces expiry fails here
	// Not before the expiry: se is whole seconds, so the token may expire up
	// to 1 s before start+2s. (No upper bound beyond waitLost's deadline:
	// timed assertions flake on a shared machine.)
	if el := time.Since(start); el < time.Second {
		t.Errorf("disconnected after %v, before the token expired", el)
	}
	e := th.events.wait(t, 0, "the expiry", is(localhub.EventTokenExpired, "dev1"))
	if !e.Expiry.Equal(tok.Expiry) {
		t.Errorf("expiry reported as %v, want the token's %v", e.Expiry, tok.Expiry)
	}
	th.events.wait(t, 0, "the connection's end", isErr(localhub.EventDisconnected, "dev1", localhub.ErrTokenExpired))
}

// TestProtocolVersion: only MQTT 3.1.1 is accepted.
func TestProtocolVersion(t *testing.T) {
	th := startHub(t, localhub.Options{})
	_, err := th.connect(t, th.creds(t, "dev1", time.Hour), func(o *paho.ClientOptions) { o.SetProtocolVersion(3) })
	if !errors.Is(err, packets.ErrorRefusedBadProtocolVersion) {
		t.Fatalf("MQTT 3.1 connect: %v, want CONNACK 1", err)
	}
	e := th.events.wait(t, 0, "the refusal", is(localhub.EventConnRefused, "dev1"))
	if e.ReturnCode != localhub.ReturnCodeBadProtocol || !errors.Is(e.Err, localhub.ErrProtocolVersion) {
		t.Errorf("refusal reported with return code %d, reason %v; want %d, %v", e.ReturnCode, e.Err, localhub.ReturnCodeBadProtocol, localhub.ErrProtocolVersion)
	}
}

// TestWillTopicRestricted: a will is allowed only on the identity's own
// telemetry topic (§3.2).
func TestWillTopicRestricted(t *testing.T) {
	th := startHub(t, localhub.Options{})
	_, err := th.connect(t, th.creds(t, "dev1", time.Hour), func(o *paho.ClientOptions) { o.SetWill("foo/bar", "x", 0, false) })
	if !errors.Is(err, packets.ErrorRefusedNotAuthorised) {
		t.Fatalf("will on foo/bar: %v, want CONNACK 5", err)
	}
	th.events.wait(t, 0, "the refusal", isErr(localhub.EventConnRefused, "dev1", localhub.ErrWillTopic))
	d, err := th.connect(t, th.creds(t, "dev1", time.Hour), func(o *paho.ClientOptions) {
		o.SetWill("devices/dev1/messages/events/", "gone", 0, false)
	})
	if err != nil {
		t.Fatalf("will on own telemetry: %v", err)
	}
	d.c.Disconnect(0)
}

// TestReplyAfterReconnect: a device that drops while a call is pending
// does not fail it; its reply on a new connection completes the call.
func TestReplyAfterReconnect(t *testing.T) {
	th := startHub(t, localhub.Options{})
	first := th.mustConnect(t, "dev1")
	seen := first.subscribe(t, 0, func(request) (int, []byte, bool) { return 0, nil, false })
	done := make(chan response, 1)
	go func() {
		done <- th.invoke(t, "dev1", "", iothub.MethodRequest{MethodName: "m", ResponseTimeoutInSeconds: 30})
	}()
	req := <-seen
	mark := th.events.mark()
	first.c.Disconnect(0)
	th.events.wait(t, mark, "the hub to see the device drop", is(localhub.EventDisconnected, "dev1"))
	select {
	case r := <-done:
		t.Fatalf("call ended when the device dropped: %d %s", r.status, r.body)
	default:
	}
	second := th.mustConnect(t, "dev1")
	second.c.Publish(iothub.MethodResponseTopic(202, req.rid), 1, false, []byte(`"after"`)).WaitTimeout(waitFor)
	select {
	case r := <-done:
		if string(r.body) != `{"status":202,"payload":"after"}` {
			t.Fatalf("got %d %s", r.status, r.body)
		}
	case <-time.After(waitFor):
		t.Fatal("the reply on the new connection did not complete the call")
	}
}

// TestInheritedSubscriptionDeliverableAtConnack: a device that reconnects
// with clean session 0 and sends no SUBSCRIBE (the Node SDK after a SAS
// renewal) can be called the moment it holds its CONNACK, with connect
// timeout 0. mochi writes the CONNACK before OnSessionEstablished, so the
// hub records presence as the CONNACK is encoded; before that fix about one
// call in thirty here got 404103. The race is repeated to make it show.
func TestInheritedSubscriptionDeliverableAtConnack(t *testing.T) {
	th := startHub(t, localhub.Options{})
	keep := func(o *paho.ClientOptions) { o.SetCleanSession(false) }
	first, err := th.connect(t, th.creds(t, "dev1", time.Hour), keep)
	if err != nil {
		t.Fatal(err)
	}
	first.subscribe(t, 0, echo)
	mark := th.events.mark()
	first.c.Disconnect(100)
	for i := range 100 {
		// Wait on the hub's own record of the disconnect: a call racing it
		// would go to the dying connection and wait out its timeout.
		e := th.events.wait(t, mark, "the hub to see the device offline", is(localhub.EventDisconnected, "dev1"))
		if e.Err != nil {
			t.Fatalf("reconnect %d: the DISCONNECT was reported as %v, want a clean disconnect", i, e.Err)
		}
		d, err := th.connect(t, th.creds(t, "dev1", time.Hour), keep)
		if err != nil {
			t.Fatal(err)
		}
		d.setHandler(t, echo, nil)
		r := th.invoke(t, "dev1", "", iothub.MethodRequest{MethodName: "m", Payload: []byte(`"x"`)})
		if string(r.body) != `{"status":200,"payload":"x"}` {
			t.Fatalf("reconnect %d: got %d %s, want the inherited subscription to deliver at once", i, r.status, r.body)
		}
		mark = th.events.mark()
		d.c.Disconnect(100)
	}
}

// TestTakeoverKeepsIdentityCallable: while a device replaces its live
// connection with a new one (clean session 0, as the daemon renews its SAS,
// §7.1), calls made with connect timeout 0 never get 404103: the hub holds
// them until the new connection has its CONNACK. Before that fix the hub
// forgot the old connection at the kick and knew the new one only at its
// CONNACK, and calls in between failed (215 in one CI run of the daemon's
// renewal test). The takeover is repeated, under concurrent calls, to make
// the race show.
func TestTakeoverKeepsIdentityCallable(t *testing.T) {
	if testing.Short() {
		t.Skip("repeats 40 takeovers")
	}
	th := startHub(t, localhub.Options{})
	var cur newest
	// Each connection answers from its first packet on (an inherited
	// subscription delivers before any SUBSCRIBE); newest makes sure a
	// reply lost with a kicked connection is sent again on its successor.
	keep := func(o *paho.ClientOptions) {
		o.SetCleanSession(false)
		o.SetDefaultPublishHandler(func(c paho.Client, m paho.Message) {
			_, rid, err := iothub.ParseMethodRequestTopic(m.Topic())
			if err != nil {
				t.Errorf("device got topic %q: %v", m.Topic(), err)
				return
			}
			cur.reply(c, iothub.MethodResponseTopic(200, rid), m.Payload())
		})
	}
	connect := func() *device {
		d, err := th.connect(t, th.creds(t, "dev1", time.Hour), keep)
		if err != nil {
			t.Fatal(err)
		}
		cur.set(d.c)
		return d
	}
	prev := connect()
	if tok := prev.c.Subscribe(iothub.MethodsSubscription, 0, nil); !tok.WaitTimeout(waitFor) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}

	ctx, stop := context.WithCancel(context.Background())
	var calls, notOnline, other atomic.Int64
	var wg sync.WaitGroup
	defer func() { stop(); wg.Wait() }() // also when connect fails the test
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				payload := fmt.Sprintf(`"w%d-%d"`, w, i)
				res, err := th.Invoke(context.Background(), "dev1", "", iothub.MethodRequest{
					MethodName: "m", Payload: []byte(payload), ResponseTimeoutInSeconds: 5})
				calls.Add(1)
				var e *iothub.Error
				switch {
				case err == nil:
					cur.answered(payload)
					if string(res.Payload) != payload {
						t.Errorf("call %s answered with %s", payload, res.Payload)
					}
				case errors.As(err, &e) && e.Code == iothub.CodeDeviceNotOnline:
					notOnline.Add(1)
				default:
					// Not what this test checks: a request written to a
					// connection just before its kick can be lost with it
					// (about one call in 12 runs; the kick resets a
					// connection whose input the hub had not read).
					other.Add(1)
					t.Logf("call %s failed: %v", payload, err)
				}
			}
		})
	}
	for range 40 {
		d := connect()
		_ = prev.waitLost(t)
		prev = d
	}
	stop()
	wg.Wait()
	t.Logf("%d calls across 40 takeovers: %d got 404103, %d failed otherwise", calls.Load(), notOnline.Load(), other.Load())
	if notOnline.Load() != 0 {
		t.Errorf("%d of %d calls got 404103 DeviceNotOnline during takeovers, want 0", notOnline.Load(), calls.Load())
	}
}

// newest is a test device's latest connection. A reply goes out on the
// connection its request arrived on and, if that is no longer the newest,
// on the newest too; a new connection sends again every reply whose call
// has not completed. A kicked connection loses what the hub had not read
// yet, and the hub drops duplicate replies, so every call gets its reply.
type newest struct {
	mu   sync.Mutex
	c    paho.Client
	sent map[string]string // reply body → topic, until its call completes
}

// set makes c the newest connection and sends it the replies of calls not
// yet completed.
func (n *newest) set(c paho.Client) {
	n.mu.Lock()
	n.c = c
	again := maps.Clone(n.sent)
	n.mu.Unlock()
	for body, topic := range again {
		c.Publish(topic, 0, false, body).WaitTimeout(waitFor)
	}
}

// reply publishes on c, and on the newest connection if c is not it.
func (n *newest) reply(c paho.Client, topic string, body []byte) {
	n.mu.Lock()
	latest := n.c
	if n.sent == nil {
		n.sent = map[string]string{}
	}
	n.sent[string(body)] = topic
	n.mu.Unlock()
	c.Publish(topic, 0, false, body).WaitTimeout(waitFor)
	if latest != c {
		latest.Publish(topic, 0, false, body).WaitTimeout(waitFor)
	}
}

// answered forgets the reply to the call whose payload was body.
func (n *newest) answered(body string) {
	n.mu.Lock()
	delete(n.sent, body)
	n.mu.Unlock()
}
