package localhub

import "crypto/tls"

// startDPS serves the provisioning endpoint on Options.DPSAddr, if set.
func (h *Hub) startDPS(tlsConf *tls.Config) error { return nil }

// closeDPS stops the provisioning endpoint; a no-op without one.
func (h *Hub) closeDPS() {}

// dpsInfoLocked fills info.DPS. h.infoMu is held.
func (h *Hub) dpsInfoLocked(info *Info) {}
