package localhub

import (
	"crypto/ecdsa"
	"crypto/sha1" // SHA-1 thumbprints are what IoT Hub registries hold
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/methodd/methodd/iothub"
)

// X.509 device authentication (design §5, "Provisioning and X.509").
//
// An identity of type selfSigned connects with any client certificate
// whose SHA-1 or SHA-256 thumbprint (hex of the hash of the leaf's DER,
// compared case-insensitively) is its primary or secondary thumbprint. One
// of type certificateAuthority connects with a client certificate that
// chains (intermediates taken from the TLS peer chain, client-auth usage)
// to a trusted CA: the hub's own CA (DIR/ca.pem) or a registered CA, i.e.
// any PEM certificate in DIR/x509/cas/*.pem, read at Start; its subject
// CN must be the identity's client id ("device", or "device/module" for a
// module identity). Either way the leaf must be within its validity at
// Options.Now. The CONNECT's password, if any, is ignored.
//
// Options.X509Devices are registered as certificateAuthority identities
// and get a client certificate from the hub's CA in DIR/x509/ID.pem and
// DIR/x509/ID-key.pem, reused by later starts and renewed when within
// deviceRenewBefore of its expiry.

// ErrCertificate is why the hub refuses the CONNECT of an X.509 identity
// (Event.Err of EventConnRefused wraps it, with the reason: no
// certificate, not valid now, thumbprint mismatch, untrusted chain, CN
// mismatch). The CONNACK is 5, as for bad credentials.
var ErrCertificate = errors.New("client certificate refused")

// State-dir layout and lifetimes of X.509 device credentials.
const (
	x509Dir             = "x509" // device certificates: ID.pem, ID-key.pem
	x509CAsDir          = "cas"  // under x509Dir: registered CAs, *.pem
	x509KeySuffix       = "-key.pem"
	x509CertSuffix      = ".pem"
	deviceLifetime      = 365 * 24 * time.Hour
	deviceRenewBefore   = 30 * 24 * time.Hour
	sha1ThumbprintLen   = 2 * sha1.Size
	sha256ThumbprintLen = 2 * sha256.Size
)

// checkThumbprint reports whether s is a thumbprint the registry accepts:
// 40 (SHA-1) or 64 (SHA-256) hex digits, either case, no separators.
func checkThumbprint(s string) error {
	if len(s) != sha1ThumbprintLen && len(s) != sha256ThumbprintLen {
		return fmt.Errorf("a thumbprint is 40 (SHA-1) or 64 (SHA-256) hex digits without separators, got %d characters", len(s))
	}
	if _, err := hex.DecodeString(s); err != nil {
		return errors.New("a thumbprint is 40 (SHA-1) or 64 (SHA-256) hex digits without separators")
	}
	return nil
}

// thumbprintMatches reports whether want (a valid thumbprint or "") is the
// SHA-1 or SHA-256 thumbprint of der.
func thumbprintMatches(want string, der []byte) bool {
	switch len(want) {
	case sha1ThumbprintLen:
		sum := sha1.Sum(der)
		return strings.EqualFold(want, hex.EncodeToString(sum[:]))
	case sha256ThumbprintLen:
		sum := sha256.Sum256(der)
		return strings.EqualFold(want, hex.EncodeToString(sum[:]))
	}
	return false
}

// checkCertificate authenticates X.509 identity clientID (id) by the client
// certificate of conn. The error wraps ErrCertificate with the reason.
func (h *Hub) checkCertificate(conn net.Conn, clientID string, id identity) error {
	chain, err := h.clientChain(conn)
	if err != nil {
		return fmt.Errorf("identity %q uses %s authentication: %w", clientID, id.authType(), err)
	}
	leaf := chain[0]
	if id.authType() == authSelfSigned {
		if !thumbprintMatches(id.PrimaryThumbprint, leaf.Raw) && !thumbprintMatches(id.SecondaryThumbprint, leaf.Raw) {
			return fmt.Errorf("%w: thumbprint mismatch: the certificate is neither the primary nor the secondary thumbprint of %q", ErrCertificate, clientID)
		}
		return nil
	}
	return h.verifyCASigned(chain, clientID)
}

// clientChain returns the client certificate chain of conn (leaf first),
// its leaf within its validity at Options.Now. The error wraps
// ErrCertificate: a failed handshake, no certificate, or a leaf expired or
// not yet valid.
func (h *Hub) clientChain(conn net.Conn) ([]*x509.Certificate, error) {
	chain, err := peerCertificates(conn)
	if err != nil {
		return nil, fmt.Errorf("%w: TLS handshake: %w", ErrCertificate, err)
	}
	if len(chain) == 0 {
		return nil, fmt.Errorf("%w: no client certificate presented", ErrCertificate)
	}
	return chain, h.checkValidity(chain[0])
}

// checkValidity refuses a leaf certificate outside its validity at
// Options.Now, with an error wrapping ErrCertificate.
func (h *Hub) checkValidity(leaf *x509.Certificate) error {
	if now := h.opts.Now(); now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
		return fmt.Errorf("%w: certificate expired or not yet valid (valid %s to %s)", ErrCertificate,
			leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// verifyCASigned checks a client certificate chain (leaf first, already
// within its validity) the way certificateAuthority identities and X.509
// DPS registrations are checked: the leaf chains to the hub's CA or a
// registered CA (DIR/x509/cas) for client authentication, and its subject
// CN is name. The error wraps ErrCertificate with the reason.
func (h *Hub) verifyCASigned(chain []*x509.Certificate, name string) error {
	leaf := chain[0]
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	roots := h.reg.cas
	if roots == nil { // never the system roots
		roots = x509.NewCertPool()
	}
	_, err := leaf.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		CurrentTime:   h.opts.Now(),
	})
	if err != nil {
		return fmt.Errorf("%w: untrusted chain: %w", ErrCertificate, err)
	}
	if leaf.Subject.CommonName != name {
		return fmt.Errorf("%w: CN mismatch: subject CN %q is not %q", ErrCertificate, leaf.Subject.CommonName, name)
	}
	return nil
}

// prepareX509 loads the trusted CAs of certificateAuthority identities
// (the hub CA and DIR/x509/cas/*.pem), registers Options.X509Devices with
// certificateAuthority authentication and issues their certificates into
// DIR/x509 (or reuses them). It runs after loadOrCreateTLS (the CA exists)
// and before the listeners. It fails on an unreadable or certificate-less
// CA file, an invalid id, or an id registered with another authentication
// type.
func (h *Hub) prepareX509() error {
	caCert, caKey, err := loadOrCreateCA(h.opts.Dir, time.Now())
	if err != nil {
		return err
	}
	roots, err := loadRegisteredCAs(filepath.Join(h.opts.Dir, x509Dir, x509CAsDir))
	if err != nil {
		return err
	}
	roots.AddCert(caCert)
	h.reg.cas = roots // before any connection: read without a lock
	if len(h.opts.X509Devices) == 0 {
		return nil
	}
	dir := filepath.Join(h.opts.Dir, x509Dir)
	if err := ensureDir(dir); err != nil {
		return err
	}
	for _, id := range h.opts.X509Devices {
		if err := h.reg.addCA(id, h.opts.Now()); err != nil {
			return err
		}
		if err := h.twins.ensure(id, h.opts.Now()); err != nil {
			return err
		}
		if err := ensureDeviceCert(dir, id, caCert, caKey, h.opts.Now()); err != nil {
			return err
		}
	}
	return nil
}

// loadRegisteredCAs returns a pool of every PEM certificate in dir/*.pem;
// a missing dir is an empty pool. A file without a certificate, or with
// one that does not parse, is an error naming it.
func loadRegisteredCAs(dir string) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	paths, err := filepath.Glob(filepath.Join(dir, "*.pem"))
	if err != nil {
		return nil, fmt.Errorf("registered CAs: %w", err)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("registered CA: %w", err)
		}
		n := 0
		for blk, rest := pem.Decode(b); blk != nil; blk, rest = pem.Decode(rest) {
			if blk.Type != "CERTIFICATE" {
				continue
			}
			c, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				return nil, fmt.Errorf("registered CA %s: %w", p, err)
			}
			pool.AddCert(c)
			n++
		}
		if n == 0 {
			return nil, fmt.Errorf("registered CA %s: no PEM certificate in it", p)
		}
	}
	return pool, nil
}

// ensureDeviceCert issues device id's client certificate (CN id, client
// auth, P-256, deviceLifetime) from the hub CA into dir/ID.pem and
// dir/ID-key.pem, unless a pair there is signed by that CA and valid for
// more than deviceRenewBefore.
func ensureDeviceCert(dir, id string, caCert *x509.Certificate, caKey *ecdsa.PrivateKey, now time.Time) error {
	certPath, keyPath := filepath.Join(dir, id+x509CertSuffix), filepath.Join(dir, id+x509KeySuffix)
	pair, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err == nil && pair.Leaf != nil && pair.Leaf.CheckSignatureFrom(caCert) == nil &&
		pair.Leaf.Subject.CommonName == id && now.Add(deviceRenewBefore).Before(pair.Leaf.NotAfter) {
		return nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("device certificate %s: %w", certPath, err)
	}
	return issueDeviceCert(certPath, keyPath, id, caCert, caKey, now)
}

// x509InfoLocked fills info.X509 with every registered identity whose
// certificate and key files exist in DIR/x509. h.infoMu is held.
func (h *Hub) x509InfoLocked(info *Info) {
	// A fresh map every time: info starts as a copy of h.info, whose map
	// earlier Info values share with their callers.
	info.X509 = nil
	dir := filepath.Join(h.opts.Dir, x509Dir)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return // no X.509 devices issued
	}
	files := make(map[string]bool, len(ents))
	for _, e := range ents {
		if e.Type().IsRegular() {
			files[e.Name()] = true
		}
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		abs = dir
	}
	for id := range h.reg.identities() {
		if strings.Contains(id, "/") || !files[id+x509CertSuffix] || !files[id+x509KeySuffix] {
			continue
		}
		if info.X509 == nil {
			info.X509 = map[string]X509Files{}
		}
		info.X509[id] = X509Files{CertFile: filepath.Join(abs, id+x509CertSuffix), KeyFile: filepath.Join(abs, id+x509KeySuffix)}
	}
}

// x509ConnectionString is the device connection string of X.509 identity
// clientID: no key, x509=true.
func x509ConnectionString(clientID, gateway string) string {
	d, m := iothub.SplitClientID(clientID)
	return iothub.ConnectionString{HostName: HostName, DeviceID: d, ModuleID: m, X509: true, GatewayHostName: gateway}.String()
}
