package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/methodd/methodd/engine"
	"github.com/methodd/methodd/internal/daemon"
	"github.com/methodd/methodd/internal/device"
	"github.com/methodd/methodd/internal/handlersfile"
	"github.com/methodd/methodd/internal/localhub"
	"github.com/methodd/methodd/internal/logbatch"
	"github.com/methodd/methodd/internal/logkey"
)

const runUsage = `usage: methodd run [--config FILE] [--connection-string-file FILE] [--ca-file FILE] [--local [--hub-dir DIR] [--device ID[/MODULE]]]
                   [--log-format text|json] [--log-level LEVEL] [--drain-timeout D] [--sas-ttl D]
                   [--metrics-addr HOST:PORT]

Connect this gateway to IoT Hub over MQTT and answer every direct method from
the handlers file, until SIGINT/SIGTERM; then stop taking calls, let running
ones finish (at most --drain-timeout) and exit 0.

The handlers file is reloaded when it changes (editors, git, symlink swaps)
and on SIGHUP; an invalid or unsafe version is logged and the running one
kept. Under systemd (Type=notify) READY=1 is sent once subscribed, and the
watchdog is fed while connected or reconnecting on schedule.

The device identity is the first found of: --connection-string-file; the
file's connection.connection_string_file, or connection.provisioning (DPS:
registers, caches the assignment in $STATE_DIRECTORY/provisioning.json, and
registers again when the hub refuses the identity); $CREDENTIALS_DIRECTORY/
device-connection-string (systemd LoadCredential=); $IOTHUB_DEVICE_CONNECTION_STRING.
With --local, a local hub runs in-process instead (state in --hub-dir, free
ports on 127.0.0.1, hub.json written for 'methodd invoke --local'), the device
is registered on it and the daemon connects to it over TLS.

With --metrics-addr, Prometheus metrics are served over HTTP at /metrics on
that address (127.0.0.1:9464 for this host only; :9464 for every interface).
Off by default. See docs/operations.md, "Metrics".

Exit status: 0 stopped by SIGINT/SIGTERM; 1 the handlers file's permissions
are unsafe (someone other than root or this user could change it), or the
daemon failed; 2 usage error, invalid handlers file or no identity.

examples:
  methodd run --local --config handlers.yaml.example
  methodd run --config /etc/methodd/handlers.yaml --log-format json
  methodd run --config /etc/methodd/handlers.yaml --metrics-addr 127.0.0.1:9464
  IOTHUB_DEVICE_CONNECTION_STRING='HostName=...;DeviceId=...;SharedAccessKey=...' methodd run`

// minSASTTL is the shortest --sas-ttl: renewal at ~80 % must leave time
// for a connection attempt.
const minSASTTL = 5 * time.Second

// defaultDrainTimeout bounds the wait for running calls at shutdown.
const defaultDrainTimeout = 10 * time.Second

// runCmd implements `methodd run`.
type runCmd struct {
	env Env
	// onState, when set, receives the device session's state changes
	// (daemon.Config.OnState): the end-to-end tests wait on them.
	onState func(device.State)
}

// runFlags are the parsed flags of `methodd run`.
type runFlags struct {
	config              string
	id                  identityFlags
	logFormat, logLevel string
	drainTimeout        time.Duration
	sasTTL              time.Duration
	metricsAddr         string // "" serves no metrics
}

// Run loads the handlers, resolves the identity (or starts the local hub)
// and runs the daemon until ctx is done, turning each SIGHUP into a reload
// request. An invalid config prints its diagnostics and exits 2; an unsafe
// one exits 1.
func (c *runCmd) Run(ctx context.Context, args []string) error {
	f, err := c.parse(args)
	if err != nil {
		return err // -h included: the flags are documented everywhere, and completion reads them
	}
	if err := daemonSupported(); err != nil {
		return err
	}
	// Everything the daemon writes to stderr from here on goes through one
	// batching writer: a busy daemon writes a log line per call, and those
	// lines then share write(2)s instead of each costing one on the reply's
	// path. Close writes out what is still buffered.
	errw := logbatch.New(c.env.Stderr)
	defer errw.Close()
	logger, err := newLogger(errw, "run", f.logFormat, f.logLevel)
	if err != nil {
		return err
	}
	// Before any secret is read: commands running as this user must not
	// read it from /proc/<daemon>/environ or mem.
	if err := protectMemory(); err != nil {
		logger.Warn("cannot protect the daemon's memory from its commands", logkey.Err, err)
	}
	// From here on SIGHUP never kills the daemon: each one is a reload
	// request, queued until the daemon takes it.
	reload, stopHUP := reloadOnSIGHUP()
	defer stopHUP()
	opts := handlersfile.Options{DaemonUID: os.Geteuid(), Engine: engine.Options{Logger: logger.With(logkey.Component, "engine")}}
	loaded, err := loadForRun(errw, "run", f.config, opts)
	if err != nil {
		return err
	}
	for _, d := range loaded.Set.Warnings() {
		logger.Warn("config warning", logkey.Diagnostic, d.String())
	}
	conn := loaded.Set.Connection()
	id, err := resolveIdentity(ctx, f.id, conn, c.env.Getenv, logger)
	if err != nil {
		return err
	}
	if id.hub != nil {
		defer id.hub.Close()
	}
	observer, stopMetrics, err := startMetrics(f.metricsAddr, logger)
	if err != nil {
		return err
	}
	defer stopMetrics()
	err = daemon.Run(ctx, daemon.Config{
		Path:           f.config,
		Loaded:         loaded,
		Load:           opts,
		Device:         c.deviceConfig(f, id, conn),
		IdentitySource: id.source,
		Reload:         reload,
		Getenv:         c.env.Getenv,
		Logger:         logger,
		OnState:        c.onState,
		Version:        moduleVersion(),
		Observer:       observer,
		OnReady: func() {
			if id.hub != nil { // straight to stderr, not batched: printed before READY=1
				fmt.Fprintf(c.env.Stderr, "methodd run: %s is connected to the local hub; call it with: %s\n",
					id.cs.ClientID(), localInvokeHint(f.id, id.cs.ClientID()))
			}
		},
	})
	if err != nil {
		return fmt.Errorf("run: %w", err)
	}
	return nil
}

// deviceConfig is the session the daemon runs as id.
func (c *runCmd) deviceConfig(f runFlags, id identity, conn engine.Connection) device.Config {
	ttl := conn.SASTTL
	if f.sasTTL > 0 {
		ttl = f.sasTTL
	}
	return device.Config{
		Identity:     id.cs,
		Transport:    id.transport,
		RootCAs:      id.roots,
		ClientCert:   id.cert,
		ProductInfo:  productToken(),
		SASTTL:       ttl,
		DrainTimeout: f.drainTimeout,
		Reidentify:   id.reidentify,
	}
}

func (c *runCmd) parse(args []string) (runFlags, error) {
	var f runFlags
	fs := newFlagSet("run", runUsage, c.env.Stderr)
	fs.StringVar(&f.config, "config", engine.DefaultConfigPath, "handlers file")
	fs.StringVar(&f.id.csFile, "connection-string-file", "", "file holding the device connection string")
	fs.StringVar(&f.id.caFile, "ca-file", "", "PEM file of extra trusted root certificates (as invoke's; added to connection.ca_file)")
	fs.BoolVar(&f.id.local, "local", false, "start a local hub in-process and connect to it")
	fs.StringVar(&f.id.hubDir, "hub-dir", "", "local hub state directory (default $XDG_STATE_HOME/methodd/hub, else ~/.local/state/methodd/hub)")
	fs.StringVar(&f.id.device, "device", defaultHubDevice, "identity ID or ID/MODULE to register and use with --local")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	durationVar(fs, &f.drainTimeout, "drain-timeout", defaultDrainTimeout, "at shutdown, how long running calls may finish")
	durationVar(fs, &f.sasTTL, "sas-ttl", 0, "SAS token lifetime, overriding connection.sas_ttl (at least 5s; renewed at ~80%)")
	fs.StringVar(&f.metricsAddr, "metrics-addr", "", "serve Prometheus metrics at http://HOST:PORT/metrics (off when empty)")
	if err := parseFlags(fs, args); err != nil {
		return f, err
	}
	if fs.NArg() > 0 {
		return f, usageError("run: unexpected argument %q", fs.Arg(0))
	}
	if err := checkMetricsAddr(f.metricsAddr); err != nil {
		return f, err
	}
	f.id.hubDirSet = isSet(fs, "hub-dir")
	switch {
	case f.id.local && f.id.csFile != "":
		return f, usageError("run: --local and --connection-string-file exclude each other")
	case !f.id.local && (f.id.hubDirSet || f.id.device != defaultHubDevice):
		return f, usageError("run: --hub-dir and --device need --local")
	case f.drainTimeout <= 0:
		return f, usageError("run: --drain-timeout must be positive")
	case f.sasTTL != 0 && f.sasTTL < minSASTTL:
		return f, usageError("run: --sas-ttl must be at least %s", minSASTTL)
	}
	if f.id.local && f.id.hubDir == "" {
		dir, err := localhub.DefaultDir(c.env.Getenv)
		if err != nil {
			return f, usageError("run: --local: %v; give --hub-dir", err)
		}
		f.id.hubDir = dir
	}
	return f, nil
}

// loadForRun is the start-up load of run and simulate (the one load path,
// with errors naming cmd). An invalid
// file's diagnostics are printed on w one per line and exit 2; unsafe
// permissions are refused with exit 1.
func loadForRun(w io.Writer, cmd, path string, opts handlersfile.Options) (handlersfile.Loaded, error) {
	l, err := handlersfile.Load(path, opts)
	var diags engine.Diagnostics
	switch {
	case l.Unsafe != nil:
		return l, withExit(exitFailure, fmt.Errorf("%s: refusing to start: %w", cmd, l.Unsafe))
	case errors.As(err, &diags):
		for _, d := range diags {
			fmt.Fprintln(w, d.String())
		}
		return l, withExit(exitUsage, fmt.Errorf("%s: %s: %d problems", cmd, path, len(diags)))
	case err != nil:
		return l, withExit(exitUsage, fmt.Errorf("%s: %w", cmd, err))
	}
	return l, nil
}

// localInvokeHint is the command that calls ping on the local identity.
func localInvokeHint(f identityFlags, clientID string) string {
	s := "methodd invoke --local "
	if f.hubDirSet {
		s += "--hub-dir " + shellQuote(f.hubDir) + " "
	}
	return s + clientID + " ping"
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:@%+,", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// reloadOnSIGHUP makes SIGHUP a reload request for as long as run lives:
// the process's one SIGHUP handler. Requests that arrive while one is
// pending coalesce (a reload reads the file as it is then). stop restores
// the default action.
func reloadOnSIGHUP() (<-chan struct{}, func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	reload := make(chan struct{}, 1)
	done, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		for {
			select {
			case <-hup:
				select {
				case reload <- struct{}{}:
				default:
				}
			case <-done:
				return
			}
		}
	}()
	return reload, func() {
		signal.Stop(hup)
		close(done)
		<-exited
	}
}
