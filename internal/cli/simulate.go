package cli

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/methodd/methodd/engine"
	"github.com/methodd/methodd/internal/daemon"
	"github.com/methodd/methodd/internal/device"
	"github.com/methodd/methodd/internal/handlersfile"
	"github.com/methodd/methodd/internal/localhub"
	"github.com/methodd/methodd/internal/logbatch"
	"github.com/methodd/methodd/internal/logkey"
	"github.com/methodd/methodd/invoke"
	"github.com/methodd/methodd/iothub"
)

const simulateUsage = `usage: methodd simulate --devices N [--prefix P] --config FILE (--local [--hub-dir DIR] | --connection-string CS)
                        [--concurrency N] [--connects N] [--log-format text|json] [--log-level LEVEL]
                        [--drain-timeout D] [--sas-ttl D] [--ca-file FILE]

Registers N devices through the hub's registry API and runs N device sessions
in this process, each answering direct methods from the handlers file as
'methodd run' does and reconnecting as it does: a fleet to try jobs, 'invoke
--where' and dashboards against, locally or on a real hub. The device ids are
P followed by 1..N zero-padded to the width of N (--devices 1000: sim-0001 ..
sim-1000). Devices that already exist are reused with their keys, so the same
command can be run again.

All sessions share one compiled handlers file. A method's concurrency limit
(defaults.concurrency, per method) is therefore shared by the whole simulated
fleet, not per device: raise it in a file meant for simulate. The file's
connection section names no identity here (only transport and sas_ttl are
read), the sessions do not report to the device twin, and the file is not
reloaded.

Once every device is connected, "N devices connected" is printed on stderr.
It serves until SIGINT/SIGTERM, then stops every session (running calls may
finish, at most --drain-timeout) and exits 0. Connection changes are logged as
one line per kind and second, not one per device; --log-level debug also shows
every session's own lines.

The hub needs a policy with registry write (iothubowner): --connection-string,
else $IOTHUB_CONNECTION_STRING, else $IOTHUB_SERVICE_CONNECTION_STRING;
--local reads hub.json of a running local hub (methodd hub) from --hub-dir, and
the sessions dial its MQTT port.

Exit status: 0 stopped by SIGINT/SIGTERM; 1 the handlers file's permissions are
unsafe (as for run), or another failure; 2 usage error or invalid handlers
file; 5 a device could not be registered or has no usable key (hub, auth or
network error; the message names the device).

examples:
  methodd hub --dir /tmp/hub &
  methodd simulate --local --hub-dir /tmp/hub --devices 100 --config handlers.yaml.example
  methodd invoke --local --hub-dir /tmp/hub sim-001 ping
  IOTHUB_CONNECTION_STRING='HostName=...;SharedAccessKeyName=iothubowner;SharedAccessKey=...' \
    methodd simulate --devices 1000 --prefix lab- --config handlers.yaml`

// Bounds and defaults of simulate's flags.
const (
	maxSimDevices         = 100000
	defaultSimConcurrency = 32 // registry requests in flight
	defaultSimConnects    = 64 // connection attempts in flight while starting
	simMaxInFlight        = 16 // calls one simulated device runs at once
	simLogEvery           = time.Second
	simProgressEvery      = 200 * time.Millisecond
	maxIdentityIDLength   = 128
	identityIDPunctuation = "-.%_*?!(),:=@$'"
	simulateDefaultLogLvl = "warn"
	simulateDefaultPrefix = "sim-"
	simulateSessionLogLvl = "error" // below --log-level debug, sessions log errors only
	// simSASJitter is the part of the SAS lifetime by which each device's is
	// shortened at random, so that devices connected together do not all
	// renew (reconnect) in the same second.
	simSASJitter = 10
)

// simulateCmd implements `methodd simulate`.
type simulateCmd struct {
	env Env
	// onAllConnected, when set, runs once when every device is connected
	// (tests wait on it).
	onAllConnected func()
}

// simulateFlags are the parsed flags of `methodd simulate`.
type simulateFlags struct {
	hub                 serviceFlags
	devices             int
	prefix, config      string
	concurrency         int
	connects            int
	logFormat, logLevel string
	drainTimeout        time.Duration
	sasTTL              time.Duration
}

// Run registers the devices, runs their sessions until ctx is done and
// stops them. An invalid handlers file prints its diagnostics and exits 2,
// an unsafe one exits 1; a device that cannot be registered exits 5.
func (c *simulateCmd) Run(ctx context.Context, args []string) error {
	f, err := c.parse(args)
	if err != nil {
		return err
	}
	errw := logbatch.New(c.env.Stderr)
	defer errw.Close()
	logger, err := newLogger(errw, "simulate", f.logFormat, f.logLevel)
	if err != nil {
		return err
	}
	sessLevel := simulateSessionLogLvl
	if f.logLevel == "debug" {
		sessLevel = f.logLevel
	}
	sessLog, _ := newLogger(errw, "simulate", f.logFormat, sessLevel)
	set, err := c.load(errw, f.config, logger)
	if err != nil {
		return err
	}
	target, err := c.resolve(f, set.Connection())
	if err != nil {
		return err
	}
	defer target.client.Close()
	ids := simDeviceIDs(f.prefix, f.devices)
	devs, err := c.register(ctx, target.client, ids, f.concurrency)
	if err != nil {
		return err
	}
	target.client.Close() // the registry is done with: its idle connections go
	if ctx.Err() != nil {
		return nil
	}
	fl := newSimFleet(c, f, target, engine.New(set), sessLog, logger)
	fl.run(ctx, devs)
	return nil
}

func (c *simulateCmd) parse(args []string) (simulateFlags, error) {
	var f simulateFlags
	fs := newFlagSet("simulate", simulateUsage, c.env.Stderr)
	f.hub.add(fs)
	fs.IntVar(&f.devices, "devices", 0, "how many devices to register and run (1.."+strconv.Itoa(maxSimDevices)+")")
	fs.StringVar(&f.prefix, "prefix", simulateDefaultPrefix, "device id prefix")
	fs.StringVar(&f.config, "config", "", "handlers file every device answers from")
	fs.IntVar(&f.concurrency, "concurrency", defaultSimConcurrency, "registry requests in flight")
	fs.IntVar(&f.connects, "connects", defaultSimConnects, "connection attempts in flight while the devices start")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&f.logLevel, "log-level", simulateDefaultLogLvl, "log level: debug, info, warn or error")
	durationVar(fs, &f.drainTimeout, "drain-timeout", defaultDrainTimeout, "at shutdown, how long running calls may finish")
	durationVar(fs, &f.sasTTL, "sas-ttl", 0, "SAS token lifetime, overriding connection.sas_ttl (at least 5s; renewed at ~80%)")
	if err := parseFlags(fs, args); err != nil {
		return f, err
	}
	if fs.NArg() > 0 {
		return f, usageError("simulate: unexpected argument %q", fs.Arg(0))
	}
	if err := f.hub.check("simulate"); err != nil {
		return f, err
	}
	return f, f.validate()
}

// validate checks the parsed values; every error is a usage error.
func (f simulateFlags) validate() error {
	switch {
	case f.devices < 1 || f.devices > maxSimDevices:
		return usageError("simulate: --devices must be 1..%d, got %d", maxSimDevices, f.devices)
	case f.config == "":
		return usageError("simulate: --config is required (the handlers file the devices answer from)")
	case f.concurrency < 1:
		return usageError("simulate: --concurrency must be at least 1")
	case f.connects < 1:
		return usageError("simulate: --connects must be at least 1")
	case f.drainTimeout <= 0:
		return usageError("simulate: --drain-timeout must be positive")
	case f.sasTTL != 0 && f.sasTTL < minSASTTL:
		return usageError("simulate: --sas-ttl must be at least %s", minSASTTL)
	}
	if n := len(f.prefix) + len(strconv.Itoa(f.devices)); n > maxIdentityIDLength {
		return usageError("simulate: --prefix makes ids of %d characters; the hub allows %d", n, maxIdentityIDLength)
	}
	if i := strings.IndexFunc(f.prefix, func(r rune) bool { return !isIdentityIDRune(r) }); i >= 0 {
		return usageError("simulate: --prefix %q: %q is not allowed in a device id (letters, digits and %s)", f.prefix, f.prefix[i:i+1], identityIDPunctuation)
	}
	return nil
}

// isIdentityIDRune reports whether r may appear in a device id: ASCII
// letters and digits and IoT Hub's punctuation.
func isIdentityIDRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(identityIDPunctuation, r)
}

// simDeviceIDs are prefix followed by 1..n zero-padded to the width of n.
func simDeviceIDs(prefix string, n int) []string {
	width := len(strconv.Itoa(n))
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s%0*d", prefix, width, i+1)
	}
	return ids
}

// load is the one load path, with run's verdicts: diagnostics on w and exit
// 2; an unsafe file is refused with exit 1 (the devices run its commands).
func (c *simulateCmd) load(w io.Writer, path string, logger *slog.Logger) (*engine.Set, error) {
	opts := handlersfile.Options{DaemonUID: os.Geteuid(), Engine: engine.Options{Logger: logger.With(logkey.Component, "engine")}}
	l, err := loadForRun(w, "simulate", path, opts)
	if err != nil {
		return nil, err
	}
	for _, d := range l.Set.Warnings() {
		logger.Warn("config warning", logkey.Diagnostic, d.String())
	}
	return l.Set, nil
}

// simTarget is the hub the devices are registered on and connect to.
type simTarget struct {
	client    *invoke.Client
	hostName  string // the devices' HostName (the SAS audience)
	gateway   string // dialled instead of hostName; "" dials hostName
	transport string
	sasTTL    time.Duration
	roots     *x509.CertPool
	product   string // the sessions' DeviceClientType
}

// resolve picks the hub from the hub flags, builds the registry client
// and works out what the devices dial: the hub's own host, or with
// --local the local hub's MQTT (or WSS) listener.
func (c *simulateCmd) resolve(f simulateFlags, conn engine.Connection) (simTarget, error) {
	t := simTarget{transport: conn.Transport, sasTTL: conn.SASTTL, product: productToken()}
	if f.sasTTL > 0 {
		t.sasTTL = f.sasTTL
	}
	hub, err := resolveHub("simulate", f.hub, c.env.Getenv)
	if err != nil {
		return t, err
	}
	if t.roots, err = trustedRoots("simulate", hub, f.hub.caFile); err != nil {
		return t, err
	}
	t.hostName = hub.cs.HostName
	if f.hub.local {
		if err := t.localDial(f.hub.hubDir, c.env.Getenv); err != nil {
			return t, err
		}
	}
	t.client, err = invoke.NewClient(hub.cs, invoke.ClientOptions{
		RootCAs: t.roots, Addr: hub.addr, UserAgent: t.product, MaxConns: f.concurrency,
	})
	if err != nil {
		return t, usageError("simulate: connection string (%s): %v", hub.source, err)
	}
	return t, nil
}

// localDial points the devices at the local hub of hub.json in dir, as
// hub.json's own device strings do: HostName the hub's name, dialled at
// its MQTT (or WSS) port.
func (t *simTarget) localDial(dir string, getenv func(string) string) error {
	if dir == "" {
		d, err := localhub.DefaultDir(getenv)
		if err != nil {
			return usageError("simulate: --local: %v; give --hub-dir", err)
		}
		dir = d
	}
	info, err := localhub.ReadInfo(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return withExit(exitHubError, fmt.Errorf("simulate: no local hub in %s (start one with `methodd hub`)", dir))
	}
	if err != nil {
		return withExit(exitHubError, fmt.Errorf("simulate: --local: %w", err))
	}
	addr := info.MQTTAddr
	if t.transport == device.TransportMQTTWS {
		if addr = info.WSAddr; addr == "" {
			return withExit(exitHubError, fmt.Errorf("simulate: the handlers file asks for transport mqtt-ws and the local hub in %s has no WebSocket listener (methodd hub --ws-addr)", dir))
		}
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return withExit(exitHubError, fmt.Errorf("simulate: --local: hub.json address %q: %w", addr, err))
	}
	t.hostName, t.gateway = info.HostName, net.JoinHostPort(info.HostName, port)
	return nil
}

// register creates (or reads) every device, parallel at a time, and returns
// them in ids' order. The first failure stops the others and is returned
// with exit 5, naming its device. When ctx ends first it returns what it has
// with a nil error and says so on stderr.
func (c *simulateCmd) register(ctx context.Context, client *invoke.Client, ids []string, parallel int) ([]invoke.Device, error) {
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	devs := make([]invoke.Device, len(ids))
	prog := newSimProgress(c.env.Stderr, "registering", len(ids))
	var (
		next, created atomic.Int64
		first         error
		once          sync.Once
		wg            sync.WaitGroup
	)
	for range min(parallel, len(ids)) {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < len(ids) && rctx.Err() == nil; i = int(next.Add(1)) - 1 {
				d, err := client.CreateDevice(rctx, ids[i])
				if err == nil {
					err = usableDevice(d)
				}
				if err != nil {
					if rctx.Err() == nil {
						once.Do(func() { first = err; cancel() })
					}
					return
				}
				if d.Created {
					created.Add(1)
				}
				devs[i] = d
				prog.add()
			}
		})
	}
	wg.Wait()
	prog.end()
	switch {
	case first != nil:
		return nil, withExit(exitHubError, fmt.Errorf("simulate: %w", first))
	case ctx.Err() != nil:
		fmt.Fprintf(c.env.Stderr, "methodd simulate: interrupted while registering (%d of %d registered)\n", prog.n.Load(), len(ids))
		return nil, nil
	}
	fmt.Fprintf(c.env.Stderr, "methodd simulate: %d devices registered (%d new, %d existing)\n", len(ids), created.Load(), int64(len(ids))-created.Load())
	return devs, nil
}

// usableDevice refuses a device a session cannot connect as.
func usableDevice(d invoke.Device) error {
	switch {
	case d.Status == "disabled":
		return fmt.Errorf("device %s exists and is disabled", d.ID)
	case d.PrimaryKey == "":
		return fmt.Errorf("device %s exists with %s authentication, not a symmetric key", d.ID, d.AuthType)
	}
	return nil
}

// simProgress draws "registering 120/1000" on stderr when it is a terminal,
// at most every simProgressEvery.
type simProgress struct {
	w     io.Writer
	label string
	total int
	n     atomic.Int64

	mu   sync.Mutex
	last time.Time
	on   bool
}

func newSimProgress(w io.Writer, label string, total int) *simProgress {
	return &simProgress{w: w, label: label, total: total, on: isTerminal(w)}
}

// add counts one and redraws when due.
func (p *simProgress) add() { p.set(p.n.Add(1)) }

// set redraws with n done when due.
func (p *simProgress) set(n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.on {
		return
	}
	if now := time.Now(); now.Sub(p.last) >= simProgressEvery || n == int64(p.total) {
		p.last = now
		fmt.Fprintf(p.w, "\r%s %d/%d", p.label, n, p.total)
	}
}

// end clears the line; set draws nothing after it.
func (p *simProgress) end() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.on {
		fmt.Fprint(p.w, "\r\033[K")
		p.on = false
	}
}

// simFleet runs the simulated sessions: it starts them a bounded number of
// connection attempts at a time, counts who is connected, logs connection
// changes as one line per kind and interval, and stops them all when ctx
// ends.
type simFleet struct {
	cmd      *simulateCmd
	target   simTarget
	eng      *engine.Engine // one engine, one compiled Set, for every device
	sessLog  *slog.Logger
	log      *slog.Logger
	drain    time.Duration
	total    int
	slots    chan struct{} // one per connection attempt in flight while starting
	up       atomic.Int64  // devices connected now
	allUp    sync.Once
	upAll    chan struct{} // closed when every device is first connected
	started  time.Time
	changes  simChanges
	progress *simProgress
}

// simSession is what the fleet keeps of one device.
type simSession struct {
	up    atomic.Bool // connected now
	tried atomic.Bool // its first attempt ended: its start slot is given back
}

func newSimFleet(c *simulateCmd, f simulateFlags, t simTarget, eng *engine.Engine, sessLog, log *slog.Logger) *simFleet {
	return &simFleet{
		cmd: c, target: t, eng: eng, sessLog: sessLog, log: log.With(logkey.Component, "simulate"),
		drain: f.drainTimeout, total: f.devices, slots: make(chan struct{}, f.connects), upAll: make(chan struct{}),
		progress: newSimProgress(c.env.Stderr, "connected", f.devices),
	}
}

// run starts every session, serves until ctx ends and returns when every
// session has stopped.
func (fl *simFleet) run(ctx context.Context, devs []invoke.Device) {
	fl.started = time.Now()
	stopLog := make(chan struct{})
	var logger sync.WaitGroup
	logger.Go(func() { fl.logChanges(stopLog) })
	var wg sync.WaitGroup
	started := 0
start:
	for i := range devs {
		select {
		case fl.slots <- struct{}{}:
		case <-ctx.Done():
			break start
		}
		sess, err := fl.session(devs[i])
		if err != nil {
			<-fl.slots
			fl.log.Error("device not started", logkey.DeviceID, devs[i].ID, logkey.Err, err)
			continue
		}
		devs[i] = invoke.Device{}           // the session holds the key now
		wg.Go(func() { _ = sess.Run(ctx) }) // Run fails only when called twice
		started++
	}
	wg.Wait()
	close(stopLog)
	logger.Wait()
	fl.progress.end()
	fmt.Fprintf(fl.cmd.env.Stderr, "methodd simulate: %d devices stopped\n", started)
}

// session builds the session of d, answering through the shared engine.
func (fl *simFleet) session(d invoke.Device) (*device.Session, error) {
	s := new(simSession)
	t := fl.target
	ttl := t.sasTTL - rand.N(t.sasTTL/simSASJitter+1)
	return device.New(device.Config{
		Identity:     iothub.ConnectionString{HostName: t.hostName, DeviceID: d.ID, SharedAccessKey: d.PrimaryKey, GatewayHostName: t.gateway},
		Transport:    t.transport,
		RootCAs:      t.roots,
		ProductInfo:  t.product,
		SASTTL:       ttl,
		DrainTimeout: fl.drain,
		MaxInFlight:  simMaxInFlight,
		Logger:       fl.sessLog,
		OnState:      func(st device.State) { fl.onState(s, st) },
	}, daemon.NewHandler(fl.eng, d.ID, ""))
}

// onState counts s's state changes; it runs on s's session goroutine and
// never blocks.
func (fl *simFleet) onState(s *simSession, st device.State) {
	if st.Kind != device.Connecting && s.tried.CompareAndSwap(false, true) {
		<-fl.slots // the first attempt ended: let the next device start
	}
	switch st.Kind {
	case device.Connected:
		if s.up.CompareAndSwap(false, true) {
			fl.changes.add(simConnected, nil)
			if fl.up.Add(1) == int64(fl.total) {
				fl.allUp.Do(fl.allConnected)
			}
		}
	case device.Disconnected:
		switch {
		case st.Renewal:
			fl.changes.add(simRenewFailed, st.Err)
		case s.up.CompareAndSwap(true, false):
			fl.up.Add(-1)
			fl.changes.add(simLost, st.Err)
		default:
			fl.changes.add(simFailed, st.Err)
		}
	case device.Stopped:
		if s.up.CompareAndSwap(true, false) {
			fl.up.Add(-1)
		}
	}
}

// allConnected reports the first time every device is connected and tells
// logChanges that start-up is over.
func (fl *simFleet) allConnected() {
	close(fl.upAll)
	fl.progress.end()
	fmt.Fprintf(fl.cmd.env.Stderr, "methodd simulate: %d devices connected in %s\n", fl.total, time.Since(fl.started).Round(time.Millisecond))
	if fl.cmd.onAllConnected != nil {
		fl.cmd.onAllConnected()
	}
}

// logChanges writes the changes counted in every interval, one line per
// kind, and redraws the connect progress until every device is up. When
// they first are, start-up is over: its garbage (registry answers, TLS
// handshakes) goes back to the OS once, as the daemon's does, so that the
// fleet's RSS is what it keeps.
func (fl *simFleet) logChanges(stop <-chan struct{}) {
	tick := time.NewTicker(simLogEvery)
	defer tick.Stop()
	upAll := fl.upAll
	for {
		select {
		case <-upAll:
			upAll = nil
			debug.FreeOSMemory()
		case <-tick.C:
			fl.flushChanges()
			fl.progress.set(fl.up.Load()) // until allConnected ends it
		case <-stop:
			fl.flushChanges()
			return
		}
	}
}

// flushChanges logs the interval's changes, one line per kind, and resets
// them.
func (fl *simFleet) flushChanges() {
	n, errs := fl.changes.take()
	up := fl.up.Load()
	for k := range numSimChanges {
		if n[k] == 0 {
			continue
		}
		attrs := []any{logkey.Devices, n[k], "connectedNow", up}
		if errs[k] != "" {
			attrs = append(attrs, logkey.Err, errs[k])
		}
		fl.log.Log(context.Background(), simChangeLevel[k], simChangeMessage[k], attrs...)
	}
}

// simChange is a kind of connection change the fleet logs.
type simChange int

const (
	simConnected   simChange = iota // a device became connected
	simLost                         // a connected device lost its connection
	simFailed                       // a connection attempt failed
	simRenewFailed                  // a SAS renewal failed; the old connection stays
	numSimChanges
)

var (
	simChangeMessage = [numSimChanges]string{
		"devices connected", "devices lost their connection; reconnecting",
		"device connection attempts failed; retrying", "SAS renewals failed; old connections kept",
	}
	simChangeLevel = [numSimChanges]slog.Level{slog.LevelInfo, slog.LevelWarn, slog.LevelWarn, slog.LevelWarn}
)

// simChanges counts the connection changes of one interval, with the first
// error of each kind.
type simChanges struct {
	mu  sync.Mutex
	n   [numSimChanges]int
	err [numSimChanges]string
}

// add counts one change of kind k with its error (nil: none).
func (c *simChanges) add(k simChange, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n[k]++
	if err != nil && c.err[k] == "" {
		c.err[k] = err.Error()
	}
}

// take returns the counts and first errors and resets them.
func (c *simChanges) take() ([numSimChanges]int, [numSimChanges]string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, errs := c.n, c.err
	c.n, c.err = [numSimChanges]int{}, [numSimChanges]string{}
	return n, errs
}
