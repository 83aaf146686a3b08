package cli

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/methodd/methodd/internal/localhub"
)

const hubUsage = `usage: methodd hub [--dir DIR] [--mqtt-addr ADDR] [--https-addr ADDR] [--ws-addr ADDR]
                   [--device ID[/MODULE]]... [--allow-non-loopback] [--log-format text|json] [--log-level LEVEL]

Run a local, protocol-faithful IoT Hub for direct methods: MQTT 3.1.1 over TLS
(and over WSS at /$iothub/websocket with --ws-addr) for devices, the service
REST API over HTTPS for callers. State (CA, keys, registry) lives in DIR and is
reused by later starts; DIR/hub.json tells tools where the hub listens and
holds the connection strings. Port 0 picks a free port. Without --device,
dev-device is registered when no identity exists yet. Runs until SIGINT/SIGTERM.

examples:
  methodd hub
  methodd hub --dir /tmp/hub --mqtt-addr 127.0.0.1:0 --https-addr 127.0.0.1:0
  methodd hub --device gw --device gw/camera --ws-addr 127.0.0.1:8444
  methodd invoke --local dev-device ping`

// defaultHubDevice is registered when the registry is empty (design §1).
const defaultHubDevice = "dev-device"

// hubCmd implements `methodd hub`.
type hubCmd struct{ env Env }

// hubFlags are the parsed flags of `methodd hub`.
type hubFlags struct {
	dir, mqttAddr, httpsAddr, wsAddr string
	devices                          multiFlag
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
		Dir:              f.dir,
		MQTTAddr:         f.mqttAddr,
		HTTPSAddr:        f.httpsAddr,
		WSAddr:           f.wsAddr,
		Devices:          f.devices,
		DefaultDevice:    defaultHubDevice,
		AllowNonLoopback: f.allowNonLoopback,
		Logger:           logger,
	})
	if err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	defer h.Close()
	info := h.Info()
	fmt.Fprintf(c.env.Stderr, "methodd hub: listening (mqtts %s, https %s%s); connection strings in %s\n",
		info.MQTTAddr, info.HTTPSAddr, wsNote(info.WSAddr), filepath.Join(f.dir, "hub.json"))
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

func (c *hubCmd) parse(args []string) (hubFlags, error) {
	var f hubFlags
	fs := newFlagSet("hub", hubUsage, c.env.Stderr)
	fs.StringVar(&f.dir, "dir", "", "state directory (default $XDG_STATE_HOME/methodd/hub, else ~/.local/state/methodd/hub)")
	fs.StringVar(&f.mqttAddr, "mqtt-addr", localhub.DefaultMQTTAddr, "MQTT over TLS listen address")
	fs.StringVar(&f.httpsAddr, "https-addr", localhub.DefaultHTTPSAddr, "service REST API (HTTPS) listen address")
	fs.StringVar(&f.wsAddr, "ws-addr", "", "MQTT over secure WebSockets listen address (off when empty)")
	fs.Var(&f.devices, "device", "register identity ID or ID/MODULE (repeatable)")
	fs.BoolVar(&f.allowNonLoopback, "allow-non-loopback", false, "allow listening on non-loopback addresses")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	if err := parseFlags(fs, args); err != nil {
		return f, err
	}
	if fs.NArg() > 0 {
		return f, usageError("hub: unexpected argument %q", fs.Arg(0))
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
