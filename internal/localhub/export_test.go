package localhub

// UpdateTwin exposes the service-side twin write to the package's external
// tests of the device side, which must not depend on the REST layer.
func (h *Hub) UpdateTwin(clientID string, body []byte, replace bool, etag string) ([]byte, error) {
	return h.updateTwin(clientID, body, replace, etag)
}
