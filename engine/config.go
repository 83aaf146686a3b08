package engine

import (
	"maps"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Defaults applied when the file leaves them out.
const (
	DefaultTimeout     = 10 * time.Second
	DefaultConcurrency = 8
	// DefaultDuplicateWindow is how long a request id is remembered
	// (defaults.duplicate_window).
	DefaultDuplicateWindow = 10 * time.Minute
	DefaultSASTTL          = time.Hour
	DefaultPingName        = "ping"
	// DefaultTaskStatusName and DefaultTaskCancelName name the built-ins
	// that report on and cancel the tasks of async methods.
	DefaultTaskStatusName = "taskStatus"
	DefaultTaskCancelName = "taskCancel"
	DefaultCatalogName    = "catalog"
	// DefaultProvisioningEndpoint is the public Device Provisioning Service
	// (connection.provisioning.endpoint when not set).
	DefaultProvisioningEndpoint = "global.azure-devices-provisioning.net"
	// maxRegistrationID is the longest registration id accepted.
	maxRegistrationID = 128
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
	// GatewayHostName (host[:port]), when set, is dialled instead of the
	// hub named by the identity, as a connection string's GatewayHostName:
	// whatever the identity's source.
	GatewayHostName string
	// Provisioning, when set, gets the identity from the Device
	// Provisioning Service; nil otherwise.
	Provisioning *Provisioning
}

// Provisioning is the `connection.provisioning:` section: where and how the
// device registers with the Device Provisioning Service. Exactly one of
// SymmetricKeyFile, GroupKeyFile and CertFile+KeyFile is set. Relative file
// paths are resolved against the config file's directory.
type Provisioning struct {
	IDScope string
	// RegistrationID is "" when not set: the machine's host name, resolved
	// when the daemon starts (not at load).
	RegistrationID string
	// Endpoint is the DPS host[:port]; DefaultProvisioningEndpoint by
	// default.
	Endpoint string
	// SymmetricKeyFile holds an individual enrollment's key (base64).
	SymmetricKeyFile string
	// GroupKeyFile holds an enrollment group's key (base64); the device
	// key is derived from it and the registration id.
	GroupKeyFile string
	// CertFile and KeyFile are the X.509 device certificate and key.
	CertFile, KeyFile string
	// Cache is the file keeping the assignment; "" when not set:
	// $STATE_DIRECTORY/provisioning.json, else
	// /var/lib/methodd/provisioning.json, resolved when the daemon starts.
	Cache string
}

// Defaults is the file's `defaults:` section, with the built-in defaults
// filled in.
type Defaults struct {
	Timeout     time.Duration // per-command timeout, default 10s
	Concurrency int           // per-method concurrent calls, default 8
	// DuplicateWindow: a request id seen again within it is answered with
	// the first call's reply (dedup.go); default 10m, 0 turns it off.
	DuplicateWindow time.Duration
}

// parseConnection reads the connection section.
func (l *loader) parseConnection(n *yaml.Node, dir string) Connection {
	c := Connection{Transport: "mqtt", SASTTL: DefaultSASTTL, Twin: true}
	var certNode, keyNode, csNode, provNode *yaml.Node
	for _, f := range l.mapping(n, "connection", connectionKeys()) {
		path := join("connection", f.key)
		switch f.key {
		case "gateway_host_name":
			if s, ok := l.hostPort(f.val, path); ok {
				c.GatewayHostName = s
			}
		case "provisioning":
			c.Provisioning, provNode = l.parseProvisioning(f.val, dir), f.val
		case "transport":
			if s, ok := l.scalar(f.val, path); ok {
				if !contains(transports(), s) {
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
			s, ok := l.filePath(f.val, path, dir)
			if !ok {
				continue
			}
			switch f.key {
			case "connection_string_file":
				c.ConnectionStringFile, csNode = s, f.val
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
	if provNode != nil && csNode != nil {
		l.errorf(csNode, "connection.connection_string_file", "excludes connection.provisioning: the identity comes from one or the other")
	}
	if provNode != nil && (certNode != nil || keyNode != nil) {
		l.errorf(provNode, "connection.provisioning", "excludes connection.cert_file and key_file: with provisioning, give them as provisioning.cert_file and key_file")
	}
	return c
}

// filePath decodes a file path; a relative one is resolved against dir
// (the config file's directory).
func (l *loader) filePath(n *yaml.Node, path, dir string) (string, bool) {
	s, ok := l.scalar(n, path)
	if !ok {
		return "", false
	}
	if s == "" {
		l.errorf(n, path, "must be a file path")
		return "", false
	}
	if !filepath.IsAbs(s) {
		s = filepath.Join(dir, s)
	}
	return s, true
}

// parseProvisioning reads the connection.provisioning section; nil when it
// is not a mapping (the error is recorded).
func (l *loader) parseProvisioning(n *yaml.Node, dir string) *Provisioning {
	const base = "connection.provisioning"
	if n.Kind != yaml.MappingNode {
		l.errorf(n, base, "must be a mapping with id_scope and a key or certificate, got %s", kindName(n))
		return nil
	}
	p := &Provisioning{Endpoint: DefaultProvisioningEndpoint}
	nodes := map[string]*yaml.Node{}
	for _, f := range l.mapping(n, base, provisioningKeys()) {
		path := join(base, f.key)
		s, ok := l.scalar(f.val, path)
		if !ok {
			continue
		}
		nodes[f.key] = f.val
		switch f.key {
		case "id_scope":
			if s == "" || strings.ContainsAny(s, "/#+ \t") {
				l.errorf(f.val, path, "must be the DPS instance's id scope (such as 0ne00000001), got %s", describe(f.val))
			}
			p.IDScope = s
		case "registration_id":
			if !validRegistrationID(s) {
				l.errorf(f.val, path, "must be 1 to %d lowercase letters, digits and hyphens, got %s", maxRegistrationID, describe(f.val))
			}
			p.RegistrationID = s
		case "endpoint":
			if h, ok := l.hostPort(f.val, path); ok {
				p.Endpoint = h
			}
		default:
			if s, ok = l.filePath(f.val, path, dir); !ok {
				continue
			}
			switch f.key {
			case "symmetric_key_file":
				p.SymmetricKeyFile = s
			case "group_key_file":
				p.GroupKeyFile = s
			case "cert_file":
				p.CertFile = s
			case "key_file":
				p.KeyFile = s
			case "cache":
				p.Cache = s
			}
		}
	}
	l.checkProvisioningAuth(n, nodes)
	return p
}

// checkProvisioningAuth records an error unless the provisioning section
// (n, with its set keys in nodes) has its id scope and exactly one way to
// authenticate.
func (l *loader) checkProvisioningAuth(n *yaml.Node, nodes map[string]*yaml.Node) {
	const base = "connection.provisioning"
	if nodes["id_scope"] == nil {
		l.errorf(n, join(base, "id_scope"), "required: the id scope of the DPS instance (Azure portal: the DPS overview page)")
	}
	if (nodes["cert_file"] == nil) != (nodes["key_file"] == nil) {
		l.errorf(n, base, "cert_file and key_file go together (X.509 attestation needs both)")
	}
	ways := 0
	for _, k := range []string{"symmetric_key_file", "group_key_file", "cert_file"} {
		if nodes[k] != nil {
			ways++
		}
	}
	if ways == 0 && nodes["key_file"] == nil {
		l.errorf(n, base, "needs one of symmetric_key_file, group_key_file, or cert_file and key_file")
	} else if ways > 1 {
		l.errorf(n, base, "give only one of symmetric_key_file, group_key_file, or cert_file and key_file")
	}
}

// validRegistrationID reports whether s is a registration id DPS accepts:
// 1 to 128 of [a-z0-9-] (fleet reference §5.1; the exact set is
// unverified, this one is safe).
func validRegistrationID(s string) bool {
	if s == "" || len(s) > maxRegistrationID {
		return false
	}
	return strings.IndexFunc(s, func(r rune) bool { return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') }) < 0
}

// hostPort decodes a host name with an optional port ("gw.example.com",
// "localhost:8883", "[::1]:8883"): no scheme, path or spaces; a port is 1
// to 65535.
func (l *loader) hostPort(n *yaml.Node, path string) (string, bool) {
	s, ok := l.scalar(n, path)
	if !ok {
		return "", false
	}
	host, port, hasPort := splitHostPort(s)
	bad := host == "" || strings.ContainsAny(host, "/ \t@?#[]") || strings.Contains(s, "://")
	if num, err := strconv.Atoi(port); hasPort && (err != nil || num < 1 || num > 65535) {
		bad = true
	}
	if bad {
		l.errorf(n, path, "must be a host name with an optional port (host or host:port), got %s", describe(n))
		return "", false
	}
	return s, true
}

// splitHostPort splits "host:port" and "[v6]:port"; a bare host (an IPv6
// address included) has no port. (The engine does not import net.)
func splitHostPort(s string) (host, port string, hasPort bool) {
	if rest, ok := strings.CutPrefix(s, "["); ok {
		h, tail, ok := strings.Cut(rest, "]")
		if !ok {
			return "", "", false
		}
		port, hasPort = strings.CutPrefix(tail, ":")
		if tail != "" && !hasPort {
			return "", "", false
		}
		return h, port, hasPort
	}
	if strings.Count(s, ":") == 1 {
		return strings.Cut(s, ":")
	}
	return s, "", false
}

// parseDefaults reads the defaults section.
func (l *loader) parseDefaults(n *yaml.Node) Defaults {
	d := Defaults{Timeout: DefaultTimeout, Concurrency: DefaultConcurrency, DuplicateWindow: DefaultDuplicateWindow}
	for _, f := range l.mapping(n, "defaults", defaultsKeys()) {
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
		case "duplicate_window":
			if f.val.Kind == yaml.ScalarNode && (f.val.Value == "0" || f.val.Value == "0s") {
				d.DuplicateWindow = 0 // off
				continue
			}
			if w, ok := l.duration(f.val, path); ok {
				d.DuplicateWindow = w
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

// builtinNames is the builtins section: the name of each built-in method
// by its key ("ping", "catalog", "taskStatus", "taskCancel"), "" when
// disabled; set marks the keys the file gave (true, false or a name);
// explicit marks names the file set itself.
type builtinNames struct {
	names    map[string]string
	set      map[string]bool
	explicit map[string]bool
}

// builtinDefaults are the names of the built-ins when enabled with true or
// by default. The task built-ins are on by default only in a file with an
// async method (addBuiltins).
var builtinDefaults = map[string]string{
	"ping": DefaultPingName, "catalog": DefaultCatalogName,
	"taskStatus": DefaultTaskStatusName, "taskCancel": DefaultTaskCancelName,
}

// parseBuiltins reads `builtins: {ping: NAME|true|false, catalog: ...,
// taskStatus: ..., taskCancel: ...}`.
func (l *loader) parseBuiltins(n *yaml.Node) builtinNames {
	b := builtinNames{names: map[string]string{}, set: map[string]bool{}, explicit: map[string]bool{}}
	maps.Copy(b.names, builtinDefaults)
	at := map[string]*yaml.Node{}
	for _, f := range l.mapping(n, "builtins", builtinKeys()) {
		path := join("builtins", f.key)
		name := ""
		switch {
		case f.val.Kind == yaml.ScalarNode && f.val.Tag == "!!bool":
			if f.val.Value == "true" {
				name = builtinDefaults[f.key]
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
		b.names[f.key], b.set[f.key], at[f.key] = name, true, f.val
	}
	seen := map[string]string{}
	for _, k := range builtinKeys() {
		name := b.names[k]
		if name == "" {
			continue
		}
		if other, dup := seen[name]; dup {
			node := at[k]
			if node == nil {
				node = at[other]
			}
			l.errorf(node, join("builtins", k), "%s and %s cannot share the name %q", other, k, name)
		}
		seen[name] = k
	}
	return b
}

// DefaultConfigPath is where run, check and call look for the handlers
// file when --config is not given.
const DefaultConfigPath = "/etc/methodd/handlers.yaml"
