package device

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/methodd/methodd/internal/localhub"
	"github.com/methodd/methodd/iothub"
)

// x509DPSHub starts a hub whose DPS has the X.509 CA group "cams" (unless
// noGroup) and issues the certificates of ids from the hub's CA (through
// X509Devices, which registers them too; the tests delete nothing: DPS
// registration of a registered certificateAuthority device is idempotent).
func x509DPSHub(t *testing.T, noGroup bool, ids ...string) (*localhub.Hub, *x509.CertPool) {
	t.Helper()
	opts := localhub.Options{
		Dir: t.TempDir(), MQTTAddr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0", DPSAddr: "127.0.0.1:0",
		X509Devices: ids, EnrollmentGroups: []string{"gw"},
	}
	if !noGroup {
		opts.X509EnrollmentGroups = []string{"cams"}
	}
	h, err := localhub.Start(context.Background(), opts)
	if err != nil {
		t.Fatalf("hub: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	pem, err := os.ReadFile(h.Info().CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return h, pool
}

func hubIssued(t *testing.T, h *localhub.Hub, id string) *tls.Certificate {
	t.Helper()
	f := h.Info().X509[id]
	pair, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	return &pair
}

// selfSignedClientCert is a client certificate no hub CA signed.
func selfSignedClientCert(t *testing.T, cn string) *tls.Certificate {
	t.Helper()
	return clientCert(t, cn, nil)
}

// caIssuedClientCert is a client certificate for cn issued by the CA of
// the hub whose state dir is dir (ca.pem, ca-key.pem).
func caIssuedClientCert(t *testing.T, dir, cn string) *tls.Certificate {
	t.Helper()
	ca, err := tls.LoadX509KeyPair(filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	return clientCert(t, cn, &ca)
}

// clientCert issues a P-256 client certificate for cn, signed by parent
// (self-signed when nil).
func clientCert(t *testing.T, cn string, parent *tls.Certificate) *tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	signer, signerKey := tmpl, any(key)
	if parent != nil {
		signer, signerKey = parent.Leaf, parent.PrivateKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestProvisionX509 registers through the X.509 CA group with a
// certificate the hub's CA issued for a device the hub does not know yet:
// assigned and created as a certificateAuthority identity, with the group
// in the attestation echo.
func TestProvisionX509(t *testing.T) {
	h, pool := x509DPSHub(t, false)
	if _, ok := h.Info().Devices["cam-1"]; ok {
		t.Fatal("cam-1 registered before provisioning")
	}
	c := dpsConfig(h, pool, "cam-1", "")
	c.ClientCert = caIssuedClientCert(t, filepath.Dir(h.Info().CAFile), "cam-1")
	a, err := Provision(context.Background(), c)
	if err != nil {
		t.Fatalf("Provision: %v", err)
	}
	if a.DeviceID != "cam-1" || a.AssignedHub != localhub.HostName || a.State.X509 == nil || a.State.X509.EnrollmentGroupID != "cams" {
		t.Fatalf("assignment %+v (x509 %+v)", a, a.State.X509)
	}
	cs, err := iothub.ParseDeviceConnectionString(h.Info().Devices["cam-1"])
	if err != nil || !cs.X509 || cs.SharedAccessKey != "" {
		t.Fatalf("hub registry holds %+v (%v), want an X.509 identity", cs, err)
	}
}

// TestProvisionX509Refused: a certificate from another CA, one whose CN is
// not the registration id, and any certificate when the DPS has no X.509
// group are each 401 (not temporary).
func TestProvisionX509Refused(t *testing.T) {
	h, pool := x509DPSHub(t, false, "cam-1")
	bare, barePool := x509DPSHub(t, true, "cam-9")
	for name, tc := range map[string]struct {
		h    *localhub.Hub
		pool *x509.CertPool
		reg  string
		cert *tls.Certificate
	}{
		"foreign CA":    {h, pool, "cam-2", selfSignedClientCert(t, "cam-2")},
		"CN mismatch":   {h, pool, "cam-2", hubIssued(t, h, "cam-1")},
		"no x509 group": {bare, barePool, "cam-9", hubIssued(t, bare, "cam-9")},
	} {
		t.Run(name, func(t *testing.T) {
			c := dpsConfig(tc.h, tc.pool, tc.reg, "")
			c.ClientCert = tc.cert
			_, err := Provision(context.Background(), c)
			var pe *ProvisionError
			if !errors.As(err, &pe) || pe.Status != 401 || pe.Temporary() {
				t.Fatalf("got %v, want a 401 ProvisionError", err)
			}
		})
	}
}
