package cli

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/methodd/methodd/internal/localhub"
)

const hubUsage = `usage: methodd hub [--dir DIR] [--mqtt-addr ADDR] [--https-addr ADDR] [--ws-addr ADDR]
                   [--device ID[/MODULE]]... [--x509-device ID]... [--dps-addr ADDR [--dps-ws-addr ADDR] [--id-scope SCOPE]
                   [--enrollment-group NAME]... [--enrollment REGID]... [--x509-enrollment-group NAME]...]
                   [--allow-non-loopback] [--log-format text|json] [--log-level LEVEL]

Run a local, protocol-faithful IoT Hub for direct methods: MQTT 3.1.1 over TLS
(and over WSS at /$iothub/websocket with --ws-addr) for devices, the service
REST API over HTTPS for callers. State (CA, keys, registry) lives in DIR and is
reused by later starts; DIR/hub.json tells tools where the hub listens and
holds the connection strings. Port 0 picks a free port. Without --device,
dev-device is registered when no identity exists yet. Runs until SIGINT/SIGTERM.

--x509-device ID registers ID with X.509 authentication and issues its
certificate and key from the hub's CA into DIR (hub.json "x509"). --dps-addr
serves a Device Provisioning Service endpoint (MQTT over TLS, same CA) whose
symmetric-key enrollment groups, individual enrollments and X.509 CA groups
(certificates issued by the hub's CA, CN = registration id) register the devices
they assign in this hub (hub.json "dps": id scope and keys).

examples:
  methodd hub
  methodd hub --dir /tmp/hub --mqtt-addr 127.0.0.1:0 --https-addr 127.0.0.1:0
  methodd hub --device gw --device gw/camera --ws-addr 127.0.0.1:8444
  methodd hub --x509-device cam-1 --dps-addr 127.0.0.1:8884 --enrollment-group gateways
  methodd invoke --local dev-device ping`

// defaultHubDevice is registered when the registry is empty (design §1).
const defaultHubDevice = "dev-device"

// hubCmd implements `methodd hub`.
type hubCmd struct{ env Env }

// hubFlags are the parsed flags of `methodd hub`.
type hubFlags struct {
	dir, mqttAddr, httpsAddr, wsAddr string
	devices                          multiFlag
	x509Devices                      multiFlag
	dpsAddr, dpsWSAddr, idScope      string
	groups, enrollments, x509Groups  multiFlag
	allowNonLoopback                 bool
	logFormat, logLevel              string
}

// Run starts the hub, prints where hub.json is, blocks until ctx is done and
// closes the hub.
func (c *hubCmd) Run(ctx context.Context, args []string) error {
	f, err := c.parse(args)
	if err != nil {
		return err
	}
	logger, err := newLogger(c.env.Stderr, "hub", f.logFormat, f.logLevel)
	if err != nil {
		return err
	}
	h, err := localhub.Start(ctx, localhub.Options{
		Dir:                  f.dir,
		MQTTAddr:             f.mqttAddr,
		HTTPSAddr:            f.httpsAddr,
		WSAddr:               f.wsAddr,
		Devices:              f.devices,
		X509Devices:          f.x509Devices,
		DPSAddr:              f.dpsAddr,
		DPSWSAddr:            f.dpsWSAddr,
		IDScope:              f.idScope,
		EnrollmentGroups:     f.groups,
		Enrollments:          f.enrollments,
		X509EnrollmentGroups: f.x509Groups,
		DefaultDevice:        defaultHubDevice,
		AllowNonLoopback:     f.allowNonLoopback,
		Logger:               logger,
	})
	if err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	defer h.Close()
	info := h.Info()
	fmt.Fprintf(c.env.Stderr, "methodd hub: listening (mqtts %s, https %s%s%s); connection strings in %s\n",
		info.MQTTAddr, info.HTTPSAddr, wsNote(info.WSAddr), dpsNote(info.DPS), filepath.Join(f.dir, "hub.json"))
	<-ctx.Done()
	if err := h.Close(); err != nil {
		return fmt.Errorf("hub: close: %w", err)
	}
	return nil
}

func wsNote(addr string) string {
	if addr == "" {
		return ""
	}
	return ", wss " + addr + localhub.WebSocketPath
}

func dpsNote(dps *localhub.DPSInfo) string {
	if dps == nil {
		return ""
	}
	note := ", dps " + dps.Addr
	if dps.WSAddr != "" {
		note += " and wss " + dps.WSAddr + localhub.WebSocketPath
	}
	return note + " id scope " + dps.IDScope
}

func (c *hubCmd) parse(args []string) (hubFlags, error) {
	var f hubFlags
	fs := newFlagSet("hub", hubUsage, c.env.Stderr)
	fs.StringVar(&f.dir, "dir", "", "state directory (default $XDG_STATE_HOME/methodd/hub, else ~/.local/state/methodd/hub)")
	fs.StringVar(&f.mqttAddr, "mqtt-addr", localhub.DefaultMQTTAddr, "MQTT over TLS listen address")
	fs.StringVar(&f.httpsAddr, "https-addr", localhub.DefaultHTTPSAddr, "service REST API (HTTPS) listen address")
	fs.StringVar(&f.wsAddr, "ws-addr", "", "MQTT over secure WebSockets listen address (off when empty)")
	fs.Var(&f.devices, "device", "register identity ID or ID/MODULE (repeatable)")
	fs.Var(&f.x509Devices, "x509-device", "register device ID with an X.509 certificate issued from the hub's CA (repeatable)")
	fs.StringVar(&f.dpsAddr, "dps-addr", "", "Device Provisioning Service (MQTT over TLS) listen address (off when empty)")
	fs.StringVar(&f.dpsWSAddr, "dps-ws-addr", "", "the DPS over secure WebSockets (at /$iothub/websocket) listen address (off when empty; needs --dps-addr)")
	fs.StringVar(&f.idScope, "id-scope", "", "the DPS id scope (default: generated once and kept in DIR)")
	fs.Var(&f.groups, "enrollment-group", "create symmetric-key DPS enrollment group NAME (repeatable)")
	fs.Var(&f.enrollments, "enrollment", "create individual symmetric-key DPS enrollment REGID (repeatable)")
	fs.Var(&f.x509Groups, "x509-enrollment-group", "create X.509 CA DPS enrollment group NAME: the hub's CA signs its devices (repeatable)")
	fs.BoolVar(&f.allowNonLoopback, "allow-non-loopback", false, "allow listening on non-loopback addresses")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	if err := parseFlags(fs, args); err != nil {
		return f, err
	}
	if fs.NArg() > 0 {
		return f, usageError("hub: unexpected argument %q", fs.Arg(0))
	}
	if f.dpsAddr == "" && (f.dpsWSAddr != "" || f.idScope != "" || len(f.groups) > 0 || len(f.enrollments) > 0 || len(f.x509Groups) > 0) {
		return f, usageError("hub: --dps-ws-addr, --id-scope, --enrollment-group, --enrollment and --x509-enrollment-group need --dps-addr")
	}
	if f.dir == "" {
		dir, err := localhub.DefaultDir(c.env.Getenv)
		if err != nil {
			return f, usageError("hub: %v; pass --dir", err)
		}
		f.dir = dir
	}
	return f, nil
}
