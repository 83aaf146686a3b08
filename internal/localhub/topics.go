package localhub

import (
	"fmt"
	"strings"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/methodd/methodd/iothub"
)

// maxSubscriptions is the real hub's limit of topic filters per session (§3.3).
const maxSubscriptions = 5

// checkPublish allows method replies, twin requests (GET and reported
// PATCH, fleet reference §1.1) and the identity's own telemetry, at QoS 0
// or 1 (§3.3, §4.3). The error wraps ErrForbidden.
func (h *Hub) checkPublish(clientID string, pk packets.Packet) error {
	if pk.FixedHeader.Qos > 1 {
		return fmt.Errorf("%w: publish with QoS %d to %q", ErrForbidden, pk.FixedHeader.Qos, pk.TopicName)
	}
	if iothub.IsMethodResponseTopic(pk.TopicName) {
		if _, _, err := iothub.ParseMethodResponseTopic(pk.TopicName); err != nil {
			return fmt.Errorf("%w: publish to %q: %w", ErrForbidden, pk.TopicName, err)
		}
		return nil
	}
	if iothub.IsTwinRequestTopic(pk.TopicName) {
		if _, _, _, err := iothub.ParseTwinRequestTopic(pk.TopicName); err != nil {
			return fmt.Errorf("%w: publish to %q: %w", ErrForbidden, pk.TopicName, err)
		}
		return nil
	}
	if isTelemetryTopic(clientID, pk.TopicName) {
		return nil
	}
	return fmt.Errorf("%w: publish to %q", ErrForbidden, pk.TopicName)
}

// isTelemetryTopic reports whether topic is clientID's device-to-cloud topic:
// devices/{d}/messages/events/... or devices/{d}/modules/{m}/messages/events/...
func isTelemetryTopic(clientID, topic string) bool {
	device, module := iothub.SplitClientID(clientID)
	prefix := "devices/" + device + "/messages/events"
	if module != "" {
		prefix = "devices/" + device + "/modules/" + module + "/messages/events"
	}
	rest, ok := strings.CutPrefix(topic, prefix)
	return ok && (rest == "" || rest[0] == '/')
}

// checkSubscribe allows the documented IoT Hub filters only, at most
// maxSubscriptions per session (§3.3). The cloud-to-device filter is
// granted (the real hub grants it) but nothing is ever published there.
// The error wraps ErrForbidden.
func (h *Hub) checkSubscribe(cl *mqtt.Client, pk packets.Packet) error {
	device, module := iothub.SplitClientID(cl.ID)
	allowed := map[string]bool{
		iothub.MethodsSubscription:      true,
		iothub.TwinResponseSubscription: true,
		iothub.TwinDesiredSubscription:  true,
	}
	if module == "" {
		allowed["devices/"+device+"/messages/devicebound/#"] = true
	}
	total := map[string]bool{}
	for f := range cl.State.Subscriptions.GetAll() {
		total[f] = true
	}
	for _, f := range pk.Filters {
		if !allowed[f.Filter] {
			return fmt.Errorf("%w: subscribe to %q", ErrForbidden, f.Filter)
		}
		total[f.Filter] = true
	}
	if len(total) > maxSubscriptions {
		return fmt.Errorf("%w: more than %d subscriptions", ErrForbidden, maxSubscriptions)
	}
	return nil
}
