package localhub

import (
	"github.com/methodd/methodd/internal/twindoc"
	"github.com/methodd/methodd/iothub"
)

// identityFields are the registry-owned fields of clientID's service-side
// twin document: its ids, whether it is connected now, and from the
// registry its etag (deviceEtag), status and status time. Modules have no
// status of their own and show "enabled". authenticationType is the
// registry's: sas, selfSigned or certificateAuthority; lastActivityTime is not tracked (the real hub's "never active" value).
func (h *Hub) identityFields(clientID string) twindoc.Identity {
	device, module := iothub.SplitClientID(clientID)
	id := twindoc.Identity{DeviceID: device, ModuleID: module, ConnectionState: "Disconnected", AuthenticationType: "sas"}
	if h.presence.client(clientID) != nil {
		id.ConnectionState = "Connected"
	}
	if ident, ok := h.reg.lookup(clientID); ok {
		id.DeviceEtag = ident.etag()
		id.Status = cmpOr(ident.Status, statusEnabled)
		id.StatusUpdateTime = ident.StatusUpdatedTime
		id.AuthenticationType = ident.authType()
	}
	return id
}
