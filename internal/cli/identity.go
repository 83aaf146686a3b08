package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/methodd/methodd/engine"
	"github.com/methodd/methodd/internal/device"
	"github.com/methodd/methodd/internal/localhub"
	"github.com/methodd/methodd/internal/provision"
	"github.com/methodd/methodd/iothub"
)

// credentialName is the systemd credential holding the connection string
// (LoadCredential=device-connection-string:...).
const credentialName = "device-connection-string"

// envDeviceConnectionString is the last identity source (design §1).
const envDeviceConnectionString = "IOTHUB_DEVICE_CONNECTION_STRING"

// Where the provisioning cache lives when connection.provisioning.cache is
// not set: in systemd's StateDirectory= ($STATE_DIRECTORY), else here.
const (
	provisioningCacheName = "provisioning.json"
	defaultStateDir       = "/var/lib/methodd"
)

// identityFlags are run's flags that choose the identity.
type identityFlags struct {
	csFile    string // --connection-string-file
	local     bool   // --local
	hubDir    string // --hub-dir (defaulted)
	hubDirSet bool   // --hub-dir was given
	device    string // --device
	caFile    string // --ca-file: extra trusted roots, besides connection.ca_file
}

// identity is who the daemon connects as, and how.
type identity struct {
	cs        iothub.ConnectionString
	source    string // where cs came from; never the string itself
	transport string
	roots     *x509.CertPool // nil: system roots
	cert      *tls.Certificate
	hub       *localhub.Hub // the in-process hub with --local
	// reidentify registers with DPS again (connection.provisioning); nil
	// for a fixed identity.
	reidentify func(context.Context) (iothub.ConnectionString, error)
}

// resolveIdentity picks the identity (design §1): --connection-string-file;
// the file's connection.connection_string_file or connection.provisioning;
// the systemd credential; $IOTHUB_DEVICE_CONNECTION_STRING. With --local it
// starts the local hub and uses the registered device instead.
// connection.gateway_host_name applies to all but the local hub's. Errors
// never quote a connection string or a key.
func resolveIdentity(ctx context.Context, f identityFlags, conn engine.Connection, getenv func(string) string, logger *slog.Logger) (identity, error) {
	id, err := resolveIdentityRoots(ctx, f, conn, getenv, logger)
	if err != nil || f.caFile == "" {
		return id, err
	}
	if id.roots == nil {
		if id.roots, err = systemRootsPlus(""); err != nil {
			return id, err
		}
	}
	if err := addRoots(id.roots, f.caFile); err != nil {
		if id.hub != nil {
			id.hub.Close()
		}
		return id, usageError("run: --ca-file: %v", err)
	}
	return id, nil
}

// resolveIdentityRoots is resolveIdentity without --ca-file.
func resolveIdentityRoots(ctx context.Context, f identityFlags, conn engine.Connection, getenv func(string) string, logger *slog.Logger) (identity, error) {
	id := identity{transport: conn.Transport}
	if f.local {
		return startLocal(ctx, f, id, logger)
	}
	if f.csFile == "" && conn.Provisioning != nil {
		return provisionedIdentity(id, conn, getenv, logger)
	}
	s, source, err := findConnectionString(f, conn, getenv)
	if err != nil {
		return id, err
	}
	cs, err := iothub.ParseDeviceConnectionString(s)
	if err != nil {
		return id, usageError("run: connection string (%s): %v", source, err)
	}
	if conn.GatewayHostName != "" {
		cs.GatewayHostName = conn.GatewayHostName
	}
	id.cs, id.source = cs, source
	if conn.CAFile != "" {
		if id.roots, err = systemRootsPlus(conn.CAFile); err != nil {
			return id, usageError("run: connection.ca_file: %v", err)
		}
	}
	if conn.CertFile != "" || conn.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(conn.CertFile, conn.KeyFile)
		if err != nil {
			return id, usageError("run: connection.cert_file/key_file: %v", err)
		}
		id.cert = &cert
	}
	if cs.X509 && id.cert == nil {
		return id, usageError("run: the connection string says x509=true but connection.cert_file and key_file are not set")
	}
	return id, nil
}

// provisionedIdentity is the identity DPS provides (connection.provisioning):
// the cached assignment if there is one for this registration (then DPS is
// not contacted at start-up), else an empty one, with reidentify set to
// register: the device session calls it before connecting and whenever the
// hub refuses the identity. A missing or malformed key or certificate is an
// error here, at start-up.
func provisionedIdentity(id identity, conn engine.Connection, getenv func(string) string, logger *slog.Logger) (identity, error) {
	p := conn.Provisioning
	regID, err := registrationID(p.RegistrationID)
	if err != nil {
		return id, err
	}
	cache := p.Cache
	if cache == "" {
		cache = defaultProvisioningCache(getenv)
	}
	if id.roots, err = systemRootsPlus(conn.CAFile); err != nil {
		return id, usageError("run: connection.ca_file: %v", err)
	}
	if p.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(p.CertFile, p.KeyFile)
		if err != nil {
			return id, usageError("run: connection.provisioning.cert_file/key_file: %v", err)
		}
		id.cert = &cert
	}
	pr, err := provision.New(provision.Config{
		Endpoint: p.Endpoint, IDScope: p.IDScope, RegistrationID: regID,
		SymmetricKeyFile: p.SymmetricKeyFile, GroupKeyFile: p.GroupKeyFile, ClientCert: id.cert,
		RootCAs: id.roots, Transport: conn.Transport, GatewayHostName: conn.GatewayHostName,
		CachePath: cache, ProductInfo: productToken(), Logger: logger,
	})
	if err != nil {
		return id, usageError("run: connection.provisioning: %v", err)
	}
	cs, cached, err := pr.Cached()
	if err != nil {
		return id, usageError("run: connection.provisioning: %v", err)
	}
	id.cs, id.reidentify = cs, pr.Register
	id.source = fmt.Sprintf("provisioning (id scope %s, registration %s", p.IDScope, regID)
	if cached {
		id.source += ", cached assignment " + cache
	}
	id.source += ")"
	return id, nil
}

// registrationID is connection.provisioning.registration_id, or when not
// set the machine's host name in lower case, which must then be a valid
// registration id.
func registrationID(configured string) (string, error) {
	if configured != "" {
		return configured, nil
	}
	host, err := os.Hostname()
	if err != nil {
		return "", usageError("run: connection.provisioning.registration_id is not set and the host name is unknown: %v", err)
	}
	id := strings.ToLower(host)
	if !provision.ValidRegistrationID(id) {
		return "", usageError("run: connection.provisioning.registration_id is not set and the host name %q is not a registration id "+
			"(1 to 128 lowercase letters, digits and hyphens); set it", host)
	}
	return id, nil
}

// defaultProvisioningCache is $STATE_DIRECTORY/provisioning.json (the first
// directory when systemd lists several), else
// /var/lib/methodd/provisioning.json.
func defaultProvisioningCache(getenv func(string) string) string {
	dir, _, _ := strings.Cut(getenv("STATE_DIRECTORY"), ":")
	if dir == "" {
		dir = defaultStateDir
	}
	return filepath.Join(dir, provisioningCacheName)
}

// findConnectionString returns the first connection string found and names
// its source.
func findConnectionString(f identityFlags, conn engine.Connection, getenv func(string) string) (string, string, error) {
	files := []struct{ path, source string }{
		{f.csFile, "--connection-string-file"},
		{conn.ConnectionStringFile, "connection.connection_string_file"},
	}
	if dir := getenv("CREDENTIALS_DIRECTORY"); dir != "" {
		files = append(files, struct{ path, source string }{filepath.Join(dir, credentialName), "$CREDENTIALS_DIRECTORY/" + credentialName})
	}
	for i, fl := range files {
		if fl.path == "" {
			continue
		}
		b, err := os.ReadFile(fl.path)
		if i == 2 && errors.Is(err, fs.ErrNotExist) {
			continue // the credentials directory holds other credentials only
		}
		if err != nil {
			return "", fl.source, usageError("run: %s: %v", fl.source, err)
		}
		return strings.TrimSpace(string(b)), fl.source, nil
	}
	if s := strings.TrimSpace(getenv(envDeviceConnectionString)); s != "" {
		// Out of the environment every later child would inherit (commands
		// get a fresh one anyway). /proc/self/environ keeps the original
		// block: protectMemory is what hides that.
		_ = os.Unsetenv(envDeviceConnectionString)
		return s, "$" + envDeviceConnectionString, nil
	}
	return "", "", usageError("run: no device identity: give --connection-string-file, set connection.connection_string_file, " +
		"provide the systemd credential " + credentialName + ", set $" + envDeviceConnectionString + ", or use --local")
}

// startLocal starts the in-process local hub on free loopback ports, registers
// f.device and returns its identity, trusting the hub's CA.
func startLocal(ctx context.Context, f identityFlags, id identity, logger *slog.Logger) (identity, error) {
	opts := localhub.Options{
		Dir:       f.hubDir,
		MQTTAddr:  "127.0.0.1:0",
		HTTPSAddr: "127.0.0.1:0",
		Devices:   []string{f.device},
		Logger:    logger,
	}
	if id.transport == device.TransportMQTTWS {
		opts.WSAddr = "127.0.0.1:0"
	}
	hub, err := localhub.Start(ctx, opts)
	if err != nil {
		return id, fmt.Errorf("run: --local: %w", err)
	}
	info := hub.Info()
	s, ok := info.Devices[f.device]
	if !ok {
		hub.Close()
		return id, fmt.Errorf("run: --local: the hub did not register %s", f.device)
	}
	cs, err := iothub.ParseDeviceConnectionString(s)
	if err != nil {
		hub.Close()
		return id, fmt.Errorf("run: --local: connection string of %s: %w", f.device, err)
	}
	if opts.WSAddr != "" {
		_, port, _ := net.SplitHostPort(info.WSAddr)
		cs.GatewayHostName = net.JoinHostPort(info.HostName, port)
	}
	roots, err := systemRootsPlus(info.CAFile)
	if err != nil {
		hub.Close()
		return id, fmt.Errorf("run: --local: %w", err)
	}
	id.cs, id.source, id.roots, id.hub = cs, "local hub "+f.hubDir, roots, hub
	return id, nil
}
