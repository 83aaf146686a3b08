package device

import (
	"strconv"
	"testing"

	"github.com/eclipse/paho.mqtt.golang/packets"
)

// BenchmarkSessionDispatch measures the session's own cost per call, without
// a hub or engine: the fake broker writes a request and reads the echo reply
// over TLS. Its allocations include the fake broker's packet encode/decode
// (about 6 per call).
func BenchmarkSessionDispatch(b *testing.B) {
	br := newFakeBroker(b)
	cfg := testConfig(br, "device-1", "")
	startSession(b, cfg, echo)
	fc := br.next(b)
	fc.accept(br, 0)
	<-fc.subs
	payload := []byte(`{"name":"b"}`)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		rid := strconv.Itoa(i)
		p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
		p.TopicName = "$iothub/methods/POST/hello/?$rid=" + rid
		p.Payload = payload
		if err := fc.write(p); err != nil {
			b.Fatal(err)
		}
		r := <-fc.pubs
		if r.TopicName != "$iothub/methods/res/200/?$rid="+rid {
			b.Fatalf("got %q", r.TopicName)
		}
	}
}
