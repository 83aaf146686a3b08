package localhub

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/methodd/methodd/internal/logkey"
)

// dpsServer is the hub's Device Provisioning Service endpoint (fleet
// reference §5): a second MQTT broker on Options.DPSAddr (and
// Options.DPSWSAddr) that registers devices of its enrollments in the hub.
// Its methods are safe for concurrent use.
type dpsServer struct {
	h      *Hub
	log    *slog.Logger
	path   string // DIR/dps.json
	broker *mqtt.Server
	addr   string
	wsAddr string
	served atomic.Int64 // requests seen, for Faults.DPSThrottle

	mu    sync.Mutex
	doc   *dpsDoc                   // persisted in path
	ops   map[string]string         // operation id → registration id
	conns map[*mqtt.Client]dpsLogin // live connections
}

// dpsLogin is what a live DPS connection logged in with: the token is
// checked at register time, not at CONNECT (§5.2).
type dpsLogin struct {
	registrationID string
	password       string
	chain          []*x509.Certificate // the client certificate chain, leaf first; nil without one
}

// dps returns the hub's DPS endpoint, nil without one.
func (h *Hub) dps() *dpsServer { return h.dpsSrv.Load() }

// startDPS serves the provisioning endpoint on Options.DPSAddr (and
// Options.DPSWSAddr), if set: it loads or creates DIR/dps.json, binds the
// listeners and starts the broker. On failure nothing stays bound.
func (h *Hub) startDPS(tlsConf *tls.Config) (err error) {
	if h.opts.DPSAddr == "" {
		if h.opts.DPSWSAddr != "" {
			return errors.New("localhub: DPSWSAddr needs DPSAddr")
		}
		return nil
	}
	doc, err := loadDPSDoc(h.opts.Dir, h.opts.IDScope, h.opts.EnrollmentGroups, h.opts.Enrollments, h.opts.X509EnrollmentGroups)
	if err != nil {
		return err
	}
	s := &dpsServer{
		h:     h,
		log:   h.log.With(logkey.Component, "dps"),
		path:  filepath.Join(h.opts.Dir, dpsFile),
		doc:   doc,
		ops:   map[string]string{},
		conns: map[*mqtt.Client]dpsLogin{},
	}
	for reg, rec := range doc.Registrations {
		s.ops[rec.OperationID] = reg
	}
	ln, wsLn, err := s.bind()
	if err != nil {
		return err
	}
	// Like the device listeners, DPS asks for a client certificate without
	// verifying it in TLS: X.509 attestation is checked at register time.
	dpsTLS := tlsConf.Clone()
	dpsTLS.ClientAuth = tls.RequestClientCert
	if err := s.serve(ln, wsLn, dpsTLS); err != nil {
		ln.Close()
		if wsLn != nil {
			wsLn.Close()
		}
		return err
	}
	h.dpsSrv.Store(s)
	s.log.Info("dps started", logkey.DPSAddr, s.addr, logkey.WSAddr, s.wsAddr, logkey.IDScope, doc.IDScope)
	return nil
}

// bind listens on DPSAddr and, when set, DPSWSAddr.
func (s *dpsServer) bind() (ln, wsLn net.Listener, err error) {
	o := s.h.opts
	if ln, err = net.Listen("tcp", o.DPSAddr); err != nil {
		return nil, nil, fmt.Errorf("localhub: listen %s: %w", o.DPSAddr, err)
	}
	s.addr = ln.Addr().String()
	if o.DPSWSAddr == "" {
		return ln, nil, nil
	}
	if err := checkAddr(o.DPSWSAddr, o.AllowNonLoopback); err != nil {
		ln.Close()
		return nil, nil, err
	}
	if wsLn, err = net.Listen("tcp", o.DPSWSAddr); err != nil {
		ln.Close()
		return nil, nil, fmt.Errorf("localhub: listen %s: %w", o.DPSWSAddr, err)
	}
	s.wsAddr = wsLn.Addr().String()
	return ln, wsLn, nil
}

// serve configures the DPS broker on the bound listeners and starts it.
func (s *dpsServer) serve(ln, wsLn net.Listener, tlsConf *tls.Config) error {
	caps := brokerCapabilities()
	caps.Compatibilities.ObscureNotAuthorized = true
	quiet := quietLogger(s.log, "dps-mqtt")
	s.broker = mqtt.New(&mqtt.Options{Capabilities: caps, Logger: quiet, SysTopicResendInterval: 3600})
	if err := s.broker.AddHook(&dpsHook{s: s}, nil); err != nil {
		return fmt.Errorf("localhub: dps hook: %w", err)
	}
	o := s.h.opts // the hub's connect deadline and cap on unauthenticated connections, CONNACKs as 3.1.1 (admission.go)
	adm, wsAdm := newAdmission("dps-mqtts", o.MaxPendingConns, s.log), newAdmission("dps-wss", o.MaxPendingConns, s.log)
	if err := s.broker.AddHook(&connackHook{adm: adm, ws: wsAdm}, nil); err != nil {
		return fmt.Errorf("localhub: dps hook: %w", err)
	}
	if err := s.broker.AddListener(&tlsListener{id: "dps-mqtts", ln: tls.NewListener(ln, tlsConf), grace: o.ConnectTimeout, adm: adm}); err != nil {
		return fmt.Errorf("localhub: dps listener: %w", err)
	}
	if wsLn != nil {
		if err := s.broker.AddListener(newWSListener("dps-wss", tls.NewListener(wsLn, tlsConf), quiet, o.ConnectTimeout, wsAdm)); err != nil {
			return fmt.Errorf("localhub: dps websocket listener: %w", err)
		}
	}
	if err := s.broker.Serve(); err != nil {
		return fmt.Errorf("localhub: dps: %w", err)
	}
	return nil
}

// closeDPS stops the provisioning endpoint; a no-op without one.
func (h *Hub) closeDPS() {
	s := h.dps()
	if s == nil {
		return
	}
	for _, cl := range s.broker.Clients.GetAll() {
		cl.Stop(ErrShuttingDown)
	}
	if err := s.broker.Close(); err != nil {
		s.log.Error("dps broker close", logkey.Err, err)
	}
	// h.dpsSrv stays: hub.json, rewritten after this, keeps describing
	// the endpoint and its enrollments.
}

// dpsInfoLocked fills info.DPS. h.infoMu is held.
func (h *Hub) dpsInfoLocked(info *Info) {
	s := h.dps()
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	info.DPS = &DPSInfo{
		Addr:        s.addr,
		WSAddr:      s.wsAddr,
		IDScope:     s.doc.IDScope,
		Groups:      keys(s.doc.Groups),
		Enrollments: keys(s.doc.Enrollments),
		X509Groups:  slices.Sorted(maps.Keys(s.doc.X509Groups)),
	}
}

// SetEnrollmentEnabled enables or disables an enrollment of the DPS
// endpoint: kind is EnrollmentGroup (name is the group's name) or
// EnrollmentIndividual (name is the registration id) or
// EnrollmentX509Group (name is the group's name). The change is
// persisted in DIR/dps.json before it returns. A disabled enrollment
// answers registrations with status "disabled". It fails with
// ErrUnknownEnrollment for an enrollment (or kind) the hub does not have,
// or with the write's error (the enrollment is then unchanged).
func (h *Hub) SetEnrollmentEnabled(kind, name string, enabled bool) error {
	s := h.dps()
	if s == nil {
		return fmt.Errorf("%w: the hub serves no DPS endpoint", ErrUnknownEnrollment)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var m map[string]*dpsEnrollment
	switch kind {
	case EnrollmentGroup:
		m = s.doc.Groups
	case EnrollmentIndividual:
		m = s.doc.Enrollments
	case EnrollmentX509Group:
		m = s.doc.X509Groups
	}
	e, ok := m[name]
	if !ok {
		return fmt.Errorf("%w: %s %q", ErrUnknownEnrollment, kind, name)
	}
	was := e.Enabled
	e.Enabled = enabled
	if err := s.saveLocked(); err != nil {
		e.Enabled = was
		return err
	}
	s.log.Info("dps enrollment changed", logkey.Enrollment, name, logkey.EnrollmentKind, kind, logkey.Enabled, enabled)
	return nil
}

// saveLocked writes dps.json. s.mu is held.
func (s *dpsServer) saveLocked() error {
	if err := writeJSONAtomic(s.path, s.doc); err != nil {
		return fmt.Errorf("localhub: dps state: %w", err)
	}
	return nil
}
