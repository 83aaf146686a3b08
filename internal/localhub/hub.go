package localhub

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/methodd/methodd/internal/logkey"
	"github.com/methodd/methodd/iothub"
)

// Broker limits. Incoming packets above maxPacketBytes end the connection
// (the real hub's message limit is 256 KB); larger-than-128-KB replies that
// fit are reported to the caller as 413001.
const (
	maxPacketBytes = 256*1024 + 1024
	shutdownGrace  = 5 * time.Second
)

// Hub is a running local IoT Hub. Its methods are safe for concurrent use.
type Hub struct {
	opts     Options
	log      *slog.Logger
	reg      *registry
	twins    *twinStore
	sessions *sessionStore
	broker   *mqtt.Server
	presence *presence
	calls    *calls
	jobs     *jobs                     // jobs v2 (jobs.go)
	dpsSrv   atomic.Pointer[dpsServer] // the provisioning endpoint (dps.go); nil without one
	rid      atomic.Uint64
	done     chan struct{} // closed by Close

	httpSrv *http.Server
	serveWG sync.WaitGroup

	infoMu    sync.Mutex // serialises Info updates and hub.json writes
	info      Info       // as last written to hub.json
	infoDirty atomic.Bool
	infoW     *infoWriter // coalesced hub.json rewrites (info_writer.go)

	closeOnce sync.Once
	closeErr  error

	lock *stateLock // DIR's lock (statedir.go), released by Close
}

// Start creates or reuses the state in opts.Dir (CA, server certificate,
// registry, policy keys), registers opts.Devices (or opts.DefaultDevice in
// an empty registry), binds the MQTT/TLS, HTTPS
// and (optionally) WSS listeners and writes DIR/hub.json. When it returns
// without error the hub is listening and hub.json is in place. ctx bounds
// start-up only; the hub runs until Close.
func Start(ctx context.Context, opts Options) (_ *Hub, err error) {
	opts, err = opts.withDefaults()
	if err != nil {
		return nil, err
	}
	h := &Hub{
		opts:     opts,
		log:      opts.Logger.With(logkey.Component, "localhub"),
		presence: newPresence(),
		done:     make(chan struct{}),
	}
	if h.lock, err = openStateDir(opts.Dir, time.Now()); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			h.lock.release() // also after Close: idempotent
		}
	}()
	h.calls = newCalls()
	if err := h.prepareState(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cert, err := loadOrCreateTLS(opts.Dir, time.Now())
	if err != nil {
		return nil, err
	}
	tlsConf := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if err := h.prepareX509(); err != nil {
		return nil, err
	}
	if err := h.listen(tlsConf); err != nil {
		return nil, err
	}
	if err := h.startDPS(tlsConf); err != nil {
		h.Close()
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		h.Close()
		return nil, err
	}
	if err := h.writeInfo(); err != nil {
		h.Close()
		return nil, err
	}
	h.jobs.start()
	h.log.Info("hub started", logkey.MQTTAddr, h.info.MQTTAddr, logkey.HTTPSAddr, h.info.HTTPSAddr,
		logkey.WSAddr, h.info.WSAddr, logkey.Dir, opts.Dir, logkey.Devices, len(h.info.Devices))
	h.startInfoWriter()
	return h, nil
}

// prepareState creates the state dir, opens the registry and registers
// the requested identities.
func (h *Hub) prepareState() error {
	if err := ensureDir(h.opts.Dir); err != nil {
		return err
	}
	h.infoW = newInfoWriter() // before the REST API serves: refreshInfo uses it
	reg, err := openRegistry(h.opts.Dir, h.opts.Now(), h.log)
	if err != nil {
		return err
	}
	h.reg = reg
	if h.twins, err = openTwins(h.opts.Dir); err != nil {
		return err
	}
	if h.sessions, err = openSessions(h.opts.Dir); err != nil {
		return err
	}
	ids := h.opts.Devices
	if h.opts.DefaultDevice != "" && len(ids) == 0 && len(reg.identities()) == 0 {
		ids = []string{h.opts.DefaultDevice}
	}
	for _, id := range ids {
		d, m, err := parseIdentity(id)
		if err != nil {
			return err
		}
		if err := reg.add(d, m, h.opts.Now()); err != nil {
			return err
		}
	}
	for id := range reg.identities() { // every identity has a twin, also in a state dir older than twins
		if err := h.twins.ensure(id, h.opts.Now()); err != nil {
			return err
		}
	}
	return h.openJobs()
}

// listen binds every listener and starts serving. On failure everything
// bound so far is released.
func (h *Hub) listen(tlsConf *tls.Config) (err error) {
	var bound []net.Listener
	defer func() {
		if err != nil {
			for _, l := range bound {
				l.Close()
			}
		}
	}()
	bind := func(addr string) (net.Listener, error) {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("localhub: listen %s: %w", addr, err)
		}
		bound = append(bound, l)
		return l, nil
	}
	mqttLn, err := bind(h.opts.MQTTAddr)
	if err != nil {
		return err
	}
	httpsLn, err := bind(h.opts.HTTPSAddr)
	if err != nil {
		return err
	}
	var wsLn net.Listener
	if h.opts.WSAddr != "" {
		if wsLn, err = bind(h.opts.WSAddr); err != nil {
			return err
		}
	}
	// Device listeners ask for a client certificate without verifying it:
	// self-signed device certificates are legal, and the hub checks them
	// itself at CONNECT against the identity (x509.go). HTTPS does not ask.
	deviceTLS := tlsConf.Clone()
	deviceTLS.ClientAuth = tls.RequestClientCert
	if err := h.startBroker(tls.NewListener(mqttLn, deviceTLS), wsLn, deviceTLS); err != nil {
		return err
	}
	h.startREST(httpsLn, tlsConf)
	h.info = Info{
		HostName:  HostName,
		MQTTAddr:  mqttLn.Addr().String(),
		HTTPSAddr: httpsLn.Addr().String(),
		CAFile:    filepath.Join(h.opts.Dir, caCertFile),
	}
	if wsLn != nil {
		h.info.WSAddr = wsLn.Addr().String()
	}
	return nil
}

// brokerCapabilities are what the hub's brokers (devices, DPS) grant, as
// IoT Hub and DPS do: QoS 2 subscriptions are granted QoS 1 (§3.3, fleet
// §5.1), packets up to maxPacketBytes, no retained messages, no shared
// subscriptions.
func brokerCapabilities() *mqtt.Capabilities {
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumQos = 1
	caps.MaximumPacketSize = maxPacketBytes
	caps.RetainAvailable = 0
	caps.SharedSubAvailable = 0
	return caps
}

// quietLogger is mochi's logger: errors only, tagged with component.
func quietLogger(log *slog.Logger, component string) *slog.Logger {
	return slog.New(minLevelHandler{Handler: log.With(logkey.Component, component).Handler(), min: slog.LevelError})
}

// startBroker configures mochi as an IoT Hub device endpoint and serves it.
func (h *Hub) startBroker(mqttLn, wsLn net.Listener, tlsConf *tls.Config) error {
	caps := brokerCapabilities()
	caps.MaximumClientWritesPending = 1024
	quiet := quietLogger(h.log, "mqtt")
	h.broker = mqtt.New(&mqtt.Options{
		Capabilities:           caps,
		Logger:                 quiet,
		SysTopicResendInterval: 3600,
	})
	if err := h.broker.AddHook(&hook{h: h}, nil); err != nil {
		return fmt.Errorf("localhub: mqtt hook: %w", err)
	}
	mqttAdm := newAdmission("mqtts", h.opts.MaxPendingConns, h.log)
	wsAdm := newAdmission("wss", h.opts.MaxPendingConns, h.log)
	if err := h.broker.AddHook(&connackHook{adm: mqttAdm, ws: wsAdm}, nil); err != nil {
		return fmt.Errorf("localhub: mqtt hook: %w", err)
	}
	if err := h.broker.AddListener(&tlsListener{id: "mqtts", ln: mqttLn, grace: h.opts.ConnectTimeout, adm: mqttAdm}); err != nil {
		return fmt.Errorf("localhub: mqtt listener: %w", err)
	}
	if wsLn != nil {
		if err := h.broker.AddListener(newWSListener("wss", tls.NewListener(wsLn, tlsConf), quiet, h.opts.ConnectTimeout, wsAdm)); err != nil {
			return fmt.Errorf("localhub: websocket listener: %w", err)
		}
	}
	if err := h.broker.Serve(); err != nil {
		return fmt.Errorf("localhub: mqtt: %w", err)
	}
	return nil
}

// startREST serves the service API over HTTPS (HTTP/1.1 and HTTP/2) with
// the bounds of rest_bounds.go.
func (h *Hub) startREST(ln net.Listener, tlsConf *tls.Config) {
	adm := newAdmission("https", h.opts.MaxPendingConns, h.log)
	h.httpSrv = &http.Server{
		Handler:           newRESTHandler(h),
		TLSConfig:         tlsConf.Clone(),
		ReadHeaderTimeout: h.opts.RequestTimeout, // also bounds the TLS handshake
		WriteTimeout:      restWriteTimeout,
		IdleTimeout:       h.opts.IdleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ConnState:         adm.connState,
		ConnContext:       withConn(adm),
		ErrorLog:          slog.NewLogLogger(h.log.With(logkey.Component, "https").Handler(), slog.LevelDebug),
	}
	h.serveWG.Go(func() {
		if err := h.httpSrv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			h.log.Error("https server stopped", logkey.Err, err)
		}
	})
}

// Info returns the hub's current Info: what hub.json holds, or (after a
// registry REST change, for at most about half a second) will hold.
func (h *Hub) Info() Info {
	h.infoMu.Lock()
	defer h.infoMu.Unlock()
	return h.currentInfoLocked()
}

// AddDevice registers device (or device/module when module is set; the
// device is registered too), persists its keys and rewrites hub.json. It is
// idempotent: a known identity keeps its keys. It returns the identity's
// connection string.
func (h *Hub) AddDevice(id, module string) (string, error) {
	if err := h.reg.add(id, module, h.opts.Now()); err != nil {
		return "", err
	}
	for _, cid := range []string{id, iothub.ClientID(id, module)} {
		if err := h.twins.ensure(cid, h.opts.Now()); err != nil {
			return "", err
		}
	}
	if err := h.writeInfo(); err != nil {
		return "", err
	}
	return h.Info().Devices[iothub.ClientID(id, module)], nil
}

// Close stops the listeners, disconnects every client (EventDisconnected
// with ErrShuttingDown), fails pending calls (503001) and writes hub.json
// when a registry change has not reached it yet. It is idempotent
// and returns the first Close's result.
func (h *Hub) Close() error {
	h.closeOnce.Do(func() {
		close(h.done)
		ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		defer cancel()
		if h.httpSrv != nil {
			if err := h.httpSrv.Shutdown(ctx); err != nil {
				h.httpSrv.Close()
			}
		}
		h.jobs.close()
		h.closeDPS()
		if h.broker != nil {
			for _, cl := range h.broker.Clients.GetAll() {
				cl.Stop(ErrShuttingDown) // just close, as MQTT 3.1.1 servers do
			}
			h.closeErr = h.broker.Close()
		}
		if err := h.stopInfoWriter(); err != nil { // after the REST API: no change is left to write
			h.log.Error("hub.json not rewritten", logkey.Err, err)
			if h.closeErr == nil {
				h.closeErr = err
			}
		}
		h.presence.stopTimers()
		h.serveWG.Wait()
		h.lock.release() // last: hub.json is final, DIR free for the next hub
		h.log.Info("hub stopped")
	})
	return h.closeErr
}

// nextRID returns a fresh request id, "EPOCH.N": EPOCH is 8 hex digits
// drawn at random at the hub's first call, N a decimal counter from 1. The
// epoch keeps ids from repeating across hub restarts (a device that
// remembers request ids, as methodd does, must not take a new call for a
// duplicate). h.rid holds the epoch in its high 32 bits and N in its low.
func (h *Hub) nextRID() string {
	for {
		old := h.rid.Load()
		next := old + 1
		if old == 0 {
			next = uint64(rand.Uint32()|1<<31)<<32 | 1
		}
		if h.rid.CompareAndSwap(old, next) {
			return strconv.FormatUint(next>>32, 16) + "." + strconv.FormatUint(next&(1<<32-1), 10)
		}
	}
}
