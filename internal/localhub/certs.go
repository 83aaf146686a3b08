package localhub

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"path/filepath"
	"time"
)

// Certificate lifetimes. The server certificate is re-issued from the same
// CA when it is missing or within serverRenewBefore of its expiry, so that a
// long-lived state directory keeps working and clients keep trusting ca.pem.
const (
	caLifetime        = 10 * 365 * 24 * time.Hour
	serverLifetime    = 2 * 365 * 24 * time.Hour
	serverRenewBefore = 30 * 24 * time.Hour
)

// loadOrCreateTLS returns the server certificate for the listeners, creating
// the hub's CA (ca.pem, ca-key.pem) and a server certificate for localhost,
// 127.0.0.1 and ::1 (server.pem, server-key.pem) in dir on first use and
// reusing them later.
func loadOrCreateTLS(dir string, now time.Time) (tls.Certificate, error) {
	caCert, caKey, err := loadOrCreateCA(dir, now)
	if err != nil {
		return tls.Certificate{}, err
	}
	certPath, keyPath := filepath.Join(dir, serverCertFile), filepath.Join(dir, serverKeyFile)
	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err == nil && cert.Leaf != nil && cert.Leaf.CheckSignatureFrom(caCert) == nil &&
		now.Add(serverRenewBefore).Before(cert.Leaf.NotAfter) {
		return cert, nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return tls.Certificate{}, fmt.Errorf("server certificate: %w", err)
	}
	key, der, err := issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "localhost"},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(serverLifetime),
	}, caCert, caKey)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("server certificate: %w", err)
	}
	if err := writeKeyPair(certPath, keyPath, der, key); err != nil {
		return tls.Certificate{}, err
	}
	return tls.LoadX509KeyPair(certPath, keyPath)
}

// loadOrCreateCA loads the hub CA from dir or creates it.
func loadOrCreateCA(dir string, now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	certPath, keyPath := filepath.Join(dir, caCertFile), filepath.Join(dir, caKeyFile)
	pair, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err == nil {
		key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
		if !ok || pair.Leaf == nil {
			return nil, nil, fmt.Errorf("hub CA %s: unexpected key type", certPath)
		}
		return pair.Leaf, key, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("hub CA: %w", err)
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "methodd local hub CA"},
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caLifetime),
	}
	key, der, err := issue(tmpl, nil, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("hub CA: %w", err)
	}
	if err := writeKeyPair(certPath, keyPath, der, key); err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("hub CA: %w", err)
	}
	return cert, key, nil
}

// issue creates a P-256 key and a certificate for tmpl signed by parent
// (self-signed when parent is nil).
func issue(tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		return nil, nil, err
	}
	tmpl.SerialNumber = serial
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	return key, der, err
}

// writeKeyPair writes a PEM certificate and its PEM (PKCS#8) key, both 0600.
func writeKeyPair(certPath, keyPath string, der []byte, key *ecdsa.PrivateKey) error {
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("encode key: %w", err)
	}
	if err := writeFileAtomic(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk})); err != nil {
		return err
	}
	return writeFileAtomic(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// issueDeviceCert issues an X.509 device certificate for id from the hub
// CA: subject CN id, client-auth usage, P-256, valid from an hour before
// now for deviceLifetime; it writes the pair to certPath and keyPath
// (0600).
func issueDeviceCert(certPath, keyPath, id string, caCert *x509.Certificate, caKey *ecdsa.PrivateKey, now time.Time) error {
	key, der, err := issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: id},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(deviceLifetime),
	}, caCert, caKey)
	if err != nil {
		return fmt.Errorf("device certificate %s: %w", id, err)
	}
	return writeKeyPair(certPath, keyPath, der, key)
}
