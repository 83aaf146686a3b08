package engine

import (
	"path/filepath"
	"time"

	"gopkg.in/yaml.v3"
)

// Defaults applied when the file leaves them out.
const (
	DefaultTimeout     = 10 * time.Second
	DefaultConcurrency = 8
	DefaultSASTTL      = time.Hour
	DefaultPingName    = "ping"
	DefaultCatalogName = "catalog"
)

// Connection is the file's `connection:` section. Relative file paths are
// resolved against the config file's directory; empty means not set.
type Connection struct {
	ConnectionStringFile string
	Transport            string        // "mqtt" (TLS 8883, the default) or "mqtt-ws" (WebSockets 443)
	CAFile               string        // extra trusted roots
	CertFile             string        // X.509 device certificate (with KeyFile)
	KeyFile              string        // X.509 device key (with CertFile)
	SASTTL               time.Duration // SAS token lifetime, default 1h
	// Twin: the daemon reports its state (version, config digest, methods,
	// last reload) in the device twin's reported properties. Default true;
	// false never touches the twin.
	Twin bool
}

// Defaults is the file's `defaults:` section, with the built-in defaults
// filled in.
type Defaults struct {
	Timeout     time.Duration // per-command timeout, default 10s
	Concurrency int           // per-method concurrent calls, default 8
}

var (
	topKeys        = []string{"version", "connection", "defaults", "builtins", "methods"}
	connectionKeys = []string{"connection_string_file", "transport", "ca_file", "cert_file", "key_file", "sas_ttl", "twin"}
	defaultsKeys   = []string{"timeout", "concurrency"}
	builtinKeys    = []string{"ping", "catalog"}
)

// parseConnection reads the connection section.
func (l *loader) parseConnection(n *yaml.Node, dir string) Connection {
	c := Connection{Transport: "mqtt", SASTTL: DefaultSASTTL, Twin: true}
	var certNode, keyNode *yaml.Node
	for _, f := range l.mapping(n, "connection", connectionKeys) {
		path := join("connection", f.key)
		switch f.key {
		case "transport":
			if s, ok := l.scalar(f.val, path); ok {
				if s != "mqtt" && s != "mqtt-ws" {
					l.errorf(f.val, path, "unknown transport %q (use mqtt or mqtt-ws)", s)
				}
				c.Transport = s
			}
		case "sas_ttl":
			if d, ok := l.duration(f.val, path); ok {
				if d < time.Minute {
					l.errorf(f.val, path, "sas_ttl must be at least 1m, got %s", d)
				}
				c.SASTTL = d
			}
		case "twin":
			if b, ok := l.boolValue(f.val, path); ok {
				c.Twin = b
			}
		default:
			s, ok := l.scalar(f.val, path)
			if !ok {
				continue
			}
			if s == "" {
				l.errorf(f.val, path, "must be a file path")
				continue
			}
			if !filepath.IsAbs(s) {
				s = filepath.Join(dir, s)
			}
			switch f.key {
			case "connection_string_file":
				c.ConnectionStringFile = s
			case "ca_file":
				c.CAFile = s
			case "cert_file":
				c.CertFile, certNode = s, f.val
			case "key_file":
				c.KeyFile, keyNode = s, f.val
			}
		}
	}
	if (certNode == nil) != (keyNode == nil) {
		at := certNode
		if at == nil {
			at = keyNode
		}
		l.errorf(at, "connection", "cert_file and key_file go together (X.509 authentication needs both)")
	}
	return c
}

// parseDefaults reads the defaults section.
func (l *loader) parseDefaults(n *yaml.Node) Defaults {
	d := Defaults{Timeout: DefaultTimeout, Concurrency: DefaultConcurrency}
	for _, f := range l.mapping(n, "defaults", defaultsKeys) {
		path := join("defaults", f.key)
		switch f.key {
		case "timeout":
			if t, ok := l.duration(f.val, path); ok {
				d.Timeout = t
			}
		case "concurrency":
			if c, ok := l.concurrency(f.val, path); ok {
				d.Concurrency = c
			}
		}
	}
	return d
}

// concurrency decodes a concurrency limit (1 or more).
func (l *loader) concurrency(n *yaml.Node, path string) (int, bool) {
	c, ok := l.intValue(n, path)
	if ok && c < 1 {
		l.errorf(n, path, "concurrency must be at least 1, got %d", c)
		return 0, false
	}
	return c, ok
}

// builtinNames is the builtins section: the name of each built-in method,
// "" when disabled; explicit marks names the file set itself.
type builtinNames struct {
	ping, catalog     string
	explicit          map[string]bool
	pingAt, catalogAt *yaml.Node
}

// parseBuiltins reads `builtins: {ping: NAME|true|false, catalog: ...}`.
func (l *loader) parseBuiltins(n *yaml.Node) builtinNames {
	b := builtinNames{ping: DefaultPingName, catalog: DefaultCatalogName, explicit: map[string]bool{}}
	for _, f := range l.mapping(n, "builtins", builtinKeys) {
		path := join("builtins", f.key)
		name := ""
		switch {
		case f.val.Kind == yaml.ScalarNode && f.val.Tag == "!!bool":
			if f.val.Value == "true" {
				name = map[string]string{"ping": DefaultPingName, "catalog": DefaultCatalogName}[f.key]
			}
		case f.val.Kind == yaml.ScalarNode && f.val.Tag == "!!str":
			name = f.val.Value
			if err := checkMethodName(name); err != nil {
				l.errorf(f.val, path, "%v", err)
				continue
			}
			b.explicit[name] = true
		default:
			l.errorf(f.val, path, "must be a method name, true or false, got %s", describe(f.val))
			continue
		}
		if f.key == "ping" {
			b.ping, b.pingAt = name, f.val
		} else {
			b.catalog, b.catalogAt = name, f.val
		}
	}
	if b.ping != "" && b.ping == b.catalog {
		l.errorf(b.catalogAt, "builtins.catalog", "ping and catalog cannot share the name %q", b.ping)
	}
	return b
}

// DefaultConfigPath is where run, check and call look for the handlers
// file when --config is not given.
const DefaultConfigPath = "/etc/methodd/handlers.yaml"
