// Package provision is where the daemon's identity comes from when the
// Device Provisioning Service provides it (design §5 "Provisioning and
// X.509"): it reads the enrollment's key (or uses the X.509 certificate),
// registers through device.Provision, keeps the assignment in a cache file
// so that a restart connects without contacting DPS, and turns an
// assignment into the connection string the device session uses.
//
// The cache holds where the device was assigned, never a key: the key stays
// in its file (read again at every use), so the cache can sit in a state
// directory that is less guarded than the key, and a rotated key file needs
// no cache invalidation.
package provision

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/methodd/methodd/internal/device"
	"github.com/methodd/methodd/internal/logkey"
	"github.com/methodd/methodd/iothub"
)

// Config says how to register. IDScope, RegistrationID, Endpoint and
// CachePath are required, and exactly one of SymmetricKeyFile,
// GroupKeyFile and ClientCert.
type Config struct {
	// Endpoint is the DPS host[:port] (iothub.DPSGlobalEndpoint for Azure).
	Endpoint string
	// IDScope is the DPS instance's id scope.
	IDScope string
	// RegistrationID is this device's registration id (for X.509, the
	// certificate's common name).
	RegistrationID string
	// SymmetricKeyFile holds an individual enrollment's key (base64;
	// surrounding white space ignored).
	SymmetricKeyFile string
	// GroupKeyFile holds an enrollment group's key (base64); the device
	// key is derived from it and RegistrationID (iothub.DeriveDeviceKey).
	GroupKeyFile string
	// ClientCert is the X.509 device certificate and key.
	ClientCert *tls.Certificate
	// RootCAs verifies DPS; nil means the system roots.
	RootCAs *x509.CertPool
	// Transport is device.TransportMQTT (default) or TransportMQTTWS.
	Transport string
	// GatewayHostName, when set, goes into every connection string
	// returned: the device then dials it instead of the assigned hub.
	GatewayHostName string
	// CachePath is the file keeping the assignment (created 0600, its
	// directory 0700 if missing).
	CachePath string
	// ProductInfo is the client version sent to DPS ("methodd/1.2.3").
	ProductInfo string
	// RequestTimeout bounds each DPS request (device.Provision's default
	// when zero).
	RequestTimeout time.Duration
	// Logger receives lifecycle lines, never a key (default: discard).
	Logger *slog.Logger
	// Now stamps the cache (default time.Now).
	Now func() time.Time

	// provision registers; device.Provision outside the package's tests.
	provision func(context.Context, device.ProvisionConfig) (device.Assignment, error)
}

// Provisioner registers the device and remembers its assignment. Its
// methods may be called from several goroutines, but Register calls should
// not overlap (the device session calls it from one goroutine).
type Provisioner struct {
	cfg Config
	log *slog.Logger
}

// New checks c and returns its Provisioner. It does no I/O: key files are
// read at each use.
func New(c Config) (*Provisioner, error) {
	keys := 0
	for _, set := range []bool{c.SymmetricKeyFile != "", c.GroupKeyFile != "", c.ClientCert != nil} {
		if set {
			keys++
		}
	}
	switch {
	case c.Endpoint == "" || c.IDScope == "" || c.CachePath == "":
		return nil, errors.New("provision: Endpoint, IDScope and CachePath are required")
	case !ValidRegistrationID(c.RegistrationID):
		return nil, fmt.Errorf("provision: registration id %q: want 1 to 128 lowercase letters, digits and hyphens", c.RegistrationID)
	case keys != 1:
		return nil, errors.New("provision: give exactly one of SymmetricKeyFile, GroupKeyFile and ClientCert")
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.provision == nil {
		c.provision = device.Provision
	}
	log := c.Logger.With(logkey.Component, "provision", logkey.IDScope, c.IDScope, logkey.RegistrationID, c.RegistrationID)
	return &Provisioner{cfg: c, log: log}, nil
}

// ValidRegistrationID reports whether s is a registration id DPS accepts:
// 1 to 128 of [a-z0-9-] (fleet reference §5.1: the documented set; the
// exact one is unverified, this one is safe).
func ValidRegistrationID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	return strings.IndexFunc(s, func(r rune) bool { return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') }) < 0
}

// Register registers the device with DPS once (device.Provision: register,
// poll, honour retry-after), writes the assignment to the cache and returns
// the connection string for the assigned hub. An unwritable cache is
// logged, not returned: the device still connects, and registers again at
// its next start. Errors never hold a key.
func (p *Provisioner) Register(ctx context.Context) (iothub.ConnectionString, error) {
	key, err := p.deviceKey()
	if err != nil {
		return iothub.ConnectionString{}, err
	}
	c := p.cfg
	p.log.Info("registering with DPS", logkey.DPSAddr, c.Endpoint)
	a, err := c.provision(ctx, device.ProvisionConfig{
		Endpoint: c.Endpoint, IDScope: c.IDScope, RegistrationID: c.RegistrationID, SymmetricKey: key,
		ClientCert: c.ClientCert, RootCAs: c.RootCAs, Transport: c.Transport, ProductInfo: c.ProductInfo,
		RequestTimeout: c.RequestTimeout, Logger: c.Logger, Now: c.Now,
	})
	if err != nil {
		return iothub.ConnectionString{}, fmt.Errorf("provision %s in %s: %w", c.RegistrationID, c.IDScope, err)
	}
	if a.AssignedHub == "" || a.DeviceID == "" {
		return iothub.ConnectionString{}, fmt.Errorf("provision %s in %s: DPS assigned no hub or device id", c.RegistrationID, c.IDScope)
	}
	p.log.Info("assigned", logkey.AssignedHub, a.AssignedHub, logkey.DeviceID, a.DeviceID, logkey.Substatus, a.Substatus)
	ca := cachedAssignment{AssignedHub: a.AssignedHub, DeviceID: a.DeviceID, IDScope: c.IDScope,
		RegistrationID: c.RegistrationID, Endpoint: c.Endpoint, ProvisionedAt: c.Now().UTC()}
	if err := writeCache(c.CachePath, ca); err != nil {
		p.log.Warn("cannot cache the assignment; the next start registers again", logkey.File, c.CachePath, logkey.Err, err)
	}
	return p.connectionString(ca, key), nil
}

// Cached returns the connection string of the cached assignment; ok is
// false when there is none for this id scope, registration id and
// endpoint. A missing, unreadable or corrupt cache counts as none (a
// corrupt or unreadable one is logged). The key file is read even then, so
// that a missing or malformed key is found at start-up: that is the only
// error.
func (p *Provisioner) Cached() (cs iothub.ConnectionString, ok bool, err error) {
	key, err := p.deviceKey()
	if err != nil {
		return cs, false, err
	}
	ca, ok := p.readCache()
	if !ok {
		return cs, false, nil
	}
	return p.connectionString(ca, key), true, nil
}

// connectionString is the identity for assignment ca: HostName the
// assigned hub, DeviceId, the device key (or x509=true), GatewayHostName.
func (p *Provisioner) connectionString(ca cachedAssignment, key string) iothub.ConnectionString {
	return iothub.ConnectionString{HostName: ca.AssignedHub, DeviceID: ca.DeviceID, SharedAccessKey: key,
		X509: p.cfg.ClientCert != nil, GatewayHostName: p.cfg.GatewayHostName}
}

// deviceKey reads the device's symmetric key: the individual enrollment's
// key, or the one derived from the group key; "" for X.509.
func (p *Provisioner) deviceKey() (string, error) {
	c := p.cfg
	switch {
	case c.SymmetricKeyFile != "":
		return readKey(c.SymmetricKeyFile)
	case c.GroupKeyFile != "":
		group, err := readKey(c.GroupKeyFile)
		if err != nil {
			return "", err
		}
		return iothub.DeriveDeviceKey(group, c.RegistrationID)
	}
	return "", nil
}

// readKey reads a base64 key from path, white space trimmed. Errors name
// the file, never its content.
func readKey(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("key file: %w", err)
	}
	key := strings.TrimSpace(string(b))
	if raw, err := base64.StdEncoding.DecodeString(key); err != nil || len(raw) == 0 {
		return "", fmt.Errorf("key file %s: not a base64 key", path)
	}
	return key, nil
}
