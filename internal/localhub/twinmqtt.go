package localhub

import (
	"errors"
	"net/http"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/methodd/methodd/internal/logkey"
	"github.com/methodd/methodd/internal/twindoc"
	"github.com/methodd/methodd/iothub"
)

// handleTwinRequest answers a device's twin GET or reported PATCH (fleet
// reference §1.2, §1.3) on $iothub/twin/res/…, on cl only, if cl holds the
// response subscription (its own or inherited from its persistent
// session): a device that did not subscribe could not receive the answer
// from the real hub either. Every answer carries a body the Node SDK can
// judge: the twin, nothing on a 204, or an error JSON with a non-zero
// errorCode (an empty error body reads as success there, §1.6). The
// expected version Java v2 appends to a PATCH (&$version=) is ignored.
func (h *Hub) handleTwinRequest(cl *mqtt.Client, topic string, payload []byte) {
	op, rid, _, err := iothub.ParseTwinRequestTopic(topic)
	if err != nil { // checkPublish let only well-formed topics through
		return
	}
	if _, ok := cl.State.Subscriptions.Get(iothub.TwinResponseSubscription); !ok {
		h.log.Debug("twin request without a response subscription", logkey.ClientID, cl.ID, logkey.RequestID, rid)
		return
	}
	status, version, body := http.StatusOK, int64(0), []byte(nil)
	switch op {
	case iothub.TwinGet:
		err = h.twins.read(cl.ID, func(t *twindoc.Twin) error {
			body = t.DeviceJSON()
			return nil
		})
	case iothub.TwinPatchReported:
		status = http.StatusNoContent
		err = h.twins.modify(cl.ID, func(t *twindoc.Twin) error {
			version, err = t.PatchReported(payload, h.opts.Now())
			return err
		})
	}
	if err != nil {
		status, version, body = h.twinErrorReply(err)
	}
	h.writeTo(cl, iothub.TwinResponseTopic(status, rid, version), body)
}

// twinErrorReply turns err into the status and JSON body of a twin error
// response: its code when it is an *iothub.Error, else 500001.
func (h *Hub) twinErrorReply(err error) (int, int64, []byte) {
	var he *iothub.Error
	if !errors.As(err, &he) {
		h.log.Error("twin request failed", logkey.Err, err)
		he = iothub.NewError(iothub.CodeServerError, "The hub failed to handle the twin request.")
	}
	if h.opts.Faults.EmptyTwinErrorBody {
		return he.HTTPStatus, 0, nil
	}
	return he.HTTPStatus, 0, iothub.TwinErrorBody(he, newHex(16), h.opts.Now())
}

// writeTo publishes one packet at QoS 0 to cl alone. A failed write means
// cl is gone; nothing is retried.
func (h *Hub) writeTo(cl *mqtt.Client, topic string, payload []byte) {
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, TopicName: topic, Payload: payload}
	if err := cl.WritePacket(pk); err != nil {
		h.log.Debug("twin write failed", logkey.ClientID, cl.ID, logkey.Topic, topic, logkey.Err, err)
	}
}

// notifyDesired sends a desired-properties change to clientID's live
// connection if it holds the desired subscription (§1.4). A device that is
// not connected gets nothing: the real hub keeps no notifications; it reads
// its twin when it reconnects.
func (h *Hub) notifyDesired(clientID string, ch twindoc.Change) {
	cl := h.presence.client(clientID)
	if cl == nil {
		return
	}
	t := time.NewTimer(takeoverWait)
	defer t.Stop()
	select { // nothing may overtake the CONNACK
	case <-h.presence.connackWritten(cl):
	case <-t.C:
		return
	case <-h.done:
		return
	}
	if _, ok := cl.State.Subscriptions.Get(iothub.TwinDesiredSubscription); !ok {
		return
	}
	h.writeTo(cl, iothub.DesiredPatchTopic(ch.DesiredVersion), ch.Desired)
	h.log.Debug("desired properties notified", logkey.ClientID, clientID)
}
