package localhub_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1" // SHA-1 thumbprints are part of the protocol
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/methodd/methodd/internal/localhub"
	"github.com/methodd/methodd/iothub"
)

// testCert is a certificate a test made, with its key.
type testCert struct {
	tls  tls.Certificate
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// certSpec says what makeCert issues; zero times mean "valid for a day
// from an hour ago".
type certSpec struct {
	cn                  string
	notBefore, notAfter time.Time
	ca                  bool
	clientAuth          bool
}

// makeCert issues a P-256 certificate for spec signed by parent, or
// self-signed when parent is nil.
func makeCert(t testing.TB, spec certSpec, parent *testCert) testCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if spec.notBefore.IsZero() {
		spec.notBefore = time.Now().Add(-time.Hour)
	}
	if spec.notAfter.IsZero() {
		spec.notAfter = time.Now().Add(24 * time.Hour)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: spec.cn},
		NotBefore:    spec.notBefore,
		NotAfter:     spec.notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	if spec.ca {
		tmpl.IsCA, tmpl.BasicConstraintsValid, tmpl.KeyUsage = true, true, x509.KeyUsageCertSign
	}
	if spec.clientAuth {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	signer, signerKey := tmpl, key
	if parent != nil {
		signer, signerKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return testCert{tls: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, cert: cert, key: key}
}

// hubCA is the hub's CA with its key, read from the state dir.
func hubCA(t testing.TB, dir string) testCert {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	return testCert{tls: pair, cert: pair.Leaf, key: pair.PrivateKey.(*ecdsa.PrivateKey)}
}

// thumbprints returns the SHA-1 and SHA-256 thumbprints of c, hex.
func thumbprints(c testCert) (string, string) {
	s1 := sha1.Sum(c.cert.Raw)
	s256 := sha256.Sum256(c.cert.Raw)
	return hex.EncodeToString(s1[:]), hex.EncodeToString(s256[:])
}

// certCreds are the CONNECT fields of an X.509 identity: no password.
func (th *testHub) certCreds(clientID string) deviceCreds {
	return deviceCreds{
		dial:     strings.Replace(th.Info().MQTTAddr, "127.0.0.1", localhub.HostName, 1),
		clientID: clientID,
		username: iothub.Username(localhub.HostName, clientID, "methodd-test/1.0"),
	}
}

// withCert presents certs (none when nil) and, when url is set, connects
// there instead of the MQTT/TLS listener.
func (th *testHub) withCert(cert *tls.Certificate, url string) func(*paho.ClientOptions) {
	return func(o *paho.ClientOptions) {
		conf := &tls.Config{RootCAs: th.pool}
		if cert != nil {
			conf.Certificates = []tls.Certificate{*cert}
		}
		o.SetTLSConfig(conf)
		if url != "" {
			o.Servers = nil
			o.AddBroker(url)
		}
	}
}

// wantCertRefused checks that c presenting cert is refused with CONNACK 5
// for reason.
func (th *testHub) wantCertRefused(t testing.TB, c deviceCreds, cert *tls.Certificate, reason error) {
	t.Helper()
	mark := th.events.mark()
	if _, err := th.connect(t, c, th.withCert(cert, "")); !errors.Is(err, packets.ErrorRefusedNotAuthorised) {
		t.Fatalf("connect %s: %v, want CONNACK 5", c.clientID, err)
	}
	e := th.events.wait(t, mark, "the refusal of "+c.clientID, is(localhub.EventConnRefused, c.clientID))
	if !errors.Is(e.Err, reason) || e.ReturnCode != localhub.ReturnCodeNotAuthorized {
		t.Errorf("refused with %d for %v, want 5 for %v", e.ReturnCode, e.Err, reason)
	}
}

// x509Pair loads the certificate files hub.json lists for id.
func x509Pair(t testing.TB, info localhub.Info, id string) tls.Certificate {
	t.Helper()
	f, ok := info.X509[id]
	if !ok {
		t.Fatalf("hub.json x509 has no %s: %+v", id, info.X509)
	}
	pair, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	return pair
}

// invokeEcho connects d's methods to echo and checks one call to id.
func (th *testHub) invokeEcho(t testing.TB, d *device, id string) {
	t.Helper()
	d.subscribe(t, 0, echo)
	r := th.invoke(t, id, "", iothub.MethodRequest{MethodName: "x509", Payload: []byte(`{"n":1}`)})
	if r.status != http.StatusOK || string(r.body) != `{"status":200,"payload":{"n":1}}` {
		t.Fatalf("invoke %s: %d %s", id, r.status, r.body)
	}
}

// TestX509DeviceCASigned: an Options.X509Devices device is registered as
// certificateAuthority, gets certificate files from the hub CA (listed in
// hub.json, private modes, CN = id), connects with them over MQTT/TLS and
// WSS without a password and answers a method invoked over REST.
func TestX509DeviceCASigned(t *testing.T) {
	th := startHub(t, localhub.Options{X509Devices: []string{"xdev"}, WSAddr: "127.0.0.1:0"})
	info := th.Info()
	pair := x509Pair(t, info, "xdev")
	if pair.Leaf.Subject.CommonName != "xdev" || !slices.Contains(pair.Leaf.ExtKeyUsage, x509.ExtKeyUsageClientAuth) {
		t.Errorf("certificate CN %q, ext key usage %v", pair.Leaf.Subject.CommonName, pair.Leaf.ExtKeyUsage)
	}
	if err := pair.Leaf.CheckSignatureFrom(hubCA(t, th.opts.Dir).cert); err != nil {
		t.Errorf("not issued by the hub CA: %v", err)
	}
	f := info.X509["xdev"]
	for path, want := range map[string]os.FileMode{f.CertFile: 0o600, f.KeyFile: 0o600, filepath.Dir(f.CertFile): 0o700 | os.ModeDir} {
		if st, err := os.Stat(path); err != nil || st.Mode() != want || !filepath.IsAbs(path) {
			t.Errorf("%s: mode %v (%v), want %v and an absolute path", path, st.Mode(), err, want)
		}
	}
	cs, err := iothub.ParseDeviceConnectionString(info.Devices["xdev"])
	if err != nil || !cs.X509 || cs.SharedAccessKey != "" || cs.DeviceID != "xdev" || cs.GatewayHostName == "" {
		t.Errorf("connection string %q (%v), want x509=true without key", info.Devices["xdev"], err)
	}
	d, err := th.connect(t, th.certCreds("xdev"), th.withCert(&pair, ""))
	if err != nil {
		t.Fatalf("connect with the issued certificate: %v", err)
	}
	th.invokeEcho(t, d, "xdev")
	d.c.Disconnect(0)

	_, port, _ := strings.Cut(th.info.WSAddr, ":")
	ws, err := th.connect(t, th.certCreds("xdev"), th.withCert(&pair, "wss://localhost:"+port+localhub.WebSocketPath))
	if err != nil {
		t.Fatalf("connect over WSS with the issued certificate: %v", err)
	}
	th.invokeEcho(t, ws, "xdev")

	id := wantIdentity(t, th.call(t, http.MethodGet, "/devices/xdev", nil))
	a := id.Authentication
	if a.Type != "certificateAuthority" || a.SymmetricKey.PrimaryKey != "" || a.X509Thumbprint["primaryThumbprint"] != nil {
		t.Errorf("authentication %+v, want certificateAuthority without credentials", a)
	}
	var twin struct{ AuthenticationType string }
	if r := th.call(t, http.MethodGet, "/twins/xdev", nil); json.Unmarshal(r.body, &twin) != nil || twin.AuthenticationType != "certificateAuthority" {
		t.Errorf("twin %d %s, want authenticationType certificateAuthority", r.status, r.body)
	}
}

// TestX509SelfSigned: devices registered over REST with the SHA-1
// (upper case, primary) or SHA-256 (secondary) thumbprint of a self-signed
// certificate connect with it; the registry, twin and hub.json show them
// as selfSigned X.509 identities.
func TestX509SelfSigned(t *testing.T) {
	th := startHub(t, localhub.Options{})
	c1 := makeCert(t, certSpec{cn: "anything"}, nil) // a self-signed CN need not be the id
	c2 := makeCert(t, certSpec{cn: "ss2"}, nil)
	sha1Hex, _ := thumbprints(c1)
	_, sha256Hex := thumbprints(c2)
	other := strings.Repeat("0", 40)
	body1 := `{"deviceId":"ss1","authentication":{"type":"selfSigned","symmetricKey":{"primaryKey":"","secondaryKey":""},"x509Thumbprint":{"primaryThumbprint":"` + strings.ToUpper(sha1Hex) + `","secondaryThumbprint":null}}}`
	body2 := `{"deviceId":"ss2","authentication":{"type":"selfSigned","x509Thumbprint":{"primaryThumbprint":"` + other + `","secondaryThumbprint":"` + sha256Hex + `"}}}`
	d1 := wantIdentity(t, th.call(t, http.MethodPut, "/devices/ss1", []byte(body1)))
	wantIdentity(t, th.call(t, http.MethodPut, "/devices/ss2", []byte(body2)))
	a := d1.Authentication
	if a.Type != "selfSigned" || a.SymmetricKey.PrimaryKey != "" || a.SymmetricKey.SecondaryKey != "" ||
		a.X509Thumbprint["primaryThumbprint"] == nil || *a.X509Thumbprint["primaryThumbprint"] != strings.ToUpper(sha1Hex) ||
		a.X509Thumbprint["secondaryThumbprint"] != nil {
		t.Errorf("authentication %+v", a)
	}
	var raw struct{ Authentication map[string]json.RawMessage }
	r := th.call(t, http.MethodGet, "/devices/ss1", nil)
	if err := json.Unmarshal(r.body, &raw); err != nil || string(raw.Authentication["symmetricKey"]) != `{"primaryKey":null,"secondaryKey":null}` {
		t.Errorf("authentication %s (%v), want null keys", r.body, err)
	}
	for id, c := range map[string]testCert{"ss1": c1, "ss2": c2} {
		d, err := th.connect(t, th.certCreds(id), th.withCert(&c.tls, ""))
		if err != nil {
			t.Fatalf("connect %s: %v", id, err)
		}
		th.invokeEcho(t, d, id)
		var twin struct{ AuthenticationType string }
		if r := th.call(t, http.MethodGet, "/twins/"+id, nil); json.Unmarshal(r.body, &twin) != nil || twin.AuthenticationType != "selfSigned" {
			t.Errorf("twin %d %s, want authenticationType selfSigned", r.status, r.body)
		}
		cs, err := iothub.ParseDeviceConnectionString(th.Info().Devices[id])
		if err != nil || !cs.X509 || cs.SharedAccessKey != "" {
			t.Errorf("%s connection string %q (%v), want x509=true", id, th.Info().Devices[id], err)
		}
	}
}

// TestX509Refused: every certificate problem is CONNACK 5 with
// ErrCertificate (a SAS identity with only a certificate: ErrNoPassword),
// on a hub whose other devices keep working.
func TestX509Refused(t *testing.T) {
	th := startHub(t, localhub.Options{X509Devices: []string{"xdev"}})
	good := makeCert(t, certSpec{cn: "ss"}, nil)
	stranger := makeCert(t, certSpec{cn: "ss"}, nil)
	expired := makeCert(t, certSpec{cn: "old", notBefore: time.Now().Add(-48 * time.Hour), notAfter: time.Now().Add(-time.Hour)}, nil)
	goodPrint, _ := thumbprints(good)
	_, expiredPrint := thumbprints(expired)
	for id, tp := range map[string]string{"ss": goodPrint, "old": expiredPrint} {
		body := `{"authentication":{"type":"selfSigned","x509Thumbprint":{"primaryThumbprint":"` + tp + `"}}}`
		wantIdentity(t, th.call(t, http.MethodPut, "/devices/"+id, []byte(body)))
	}
	ca := hubCA(t, th.opts.Dir)
	foreignCA := makeCert(t, certSpec{cn: "foreign CA", ca: true}, nil)
	foreign := makeCert(t, certSpec{cn: "xdev", clientAuth: true}, &foreignCA)
	wrongCN := makeCert(t, certSpec{cn: "someone-else", clientAuth: true}, &ca)
	expiredCA := makeCert(t, certSpec{cn: "xdev", clientAuth: true, notBefore: time.Now().Add(-48 * time.Hour), notAfter: time.Now().Add(-time.Hour)}, &ca)
	issued := x509Pair(t, th.Info(), "xdev")
	withPassword := th.certCreds("xdev")
	withPassword.password = "not a token"
	cases := []struct {
		name  string
		creds deviceCreds
		cert  *tls.Certificate
		want  error
	}{
		{"wrong thumbprint", th.certCreds("ss"), &stranger.tls, localhub.ErrCertificate},
		{"expired self-signed", th.certCreds("old"), &expired.tls, localhub.ErrCertificate},
		{"expired CA-signed", th.certCreds("xdev"), &expiredCA.tls, localhub.ErrCertificate},
		{"foreign CA", th.certCreds("xdev"), &foreign.tls, localhub.ErrCertificate},
		{"CN mismatch", th.certCreds("xdev"), &wrongCN.tls, localhub.ErrCertificate},
		{"another device's certificate", th.certCreds("ss"), &issued, localhub.ErrCertificate},
		{"no certificate", th.certCreds("xdev"), nil, localhub.ErrCertificate},
		{"no certificate, a password", withPassword, nil, localhub.ErrCertificate},
		{"SAS identity with only a certificate", th.certCreds("dev1"), &issued, localhub.ErrNoPassword},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { th.wantCertRefused(t, tc.creds, tc.cert, tc.want) })
	}
	// The same hub accepts the right certificates, and SAS as before.
	if _, err := th.connect(t, th.certCreds("ss"), th.withCert(&good.tls, "")); err != nil {
		t.Errorf("ss with its certificate: %v", err)
	}
	if _, err := th.connect(t, th.certCreds("xdev"), th.withCert(&issued, "")); err != nil {
		t.Errorf("xdev with its certificate: %v", err)
	}
	th.mustConnect(t, "dev1")
}

// TestX509ExpiryUsesHubClock: validity is judged at Options.Now: the
// issued certificate is refused by a hub whose clock is past its expiry.
func TestX509ExpiryUsesHubClock(t *testing.T) {
	dir := t.TempDir()
	first := startHub(t, localhub.Options{Dir: dir, X509Devices: []string{"xdev"}})
	issued := x509Pair(t, first.Info(), "xdev")
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	late := issued.Leaf.NotAfter.Add(time.Hour)
	th := startHub(t, localhub.Options{Dir: dir, Now: func() time.Time { return late }})
	th.wantCertRefused(t, th.certCreds("xdev"), &issued, localhub.ErrCertificate)
}

// TestX509RegisteredCA: a CA in DIR/x509/cas is trusted for
// certificateAuthority identities, with intermediates from the client's
// chain.
func TestX509RegisteredCA(t *testing.T) {
	dir := t.TempDir()
	root := makeCert(t, certSpec{cn: "fleet root", ca: true}, nil)
	inter := makeCert(t, certSpec{cn: "fleet intermediate", ca: true}, &root)
	leaf := makeCert(t, certSpec{cn: "fleet1", clientAuth: true}, &inter)
	leaf.tls.Certificate = append(leaf.tls.Certificate, inter.cert.Raw)
	if err := os.MkdirAll(filepath.Join(dir, "x509", "cas"), 0o700); err != nil {
		t.Fatal(err)
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root.cert.Raw})
	if err := os.WriteFile(filepath.Join(dir, "x509", "cas", "fleet.pem"), caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	th := startHub(t, localhub.Options{Dir: dir})
	wantIdentity(t, th.call(t, http.MethodPut, "/devices/fleet1", []byte(`{"authentication":{"type":"certificateAuthority"}}`)))
	d, err := th.connect(t, th.certCreds("fleet1"), th.withCert(&leaf.tls, ""))
	if err != nil {
		t.Fatalf("connect with a certificate of a registered CA: %v", err)
	}
	th.invokeEcho(t, d, "fleet1")
	noChain := leaf.tls
	noChain.Certificate = noChain.Certificate[:1]
	th.wantCertRefused(t, th.certCreds("fleet1"), &noChain, localhub.ErrCertificate)
}

// TestX509RegisteredCAFileInvalid: a file in DIR/x509/cas without a
// certificate fails Start.
func TestX509RegisteredCAFileInvalid(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "x509", "cas"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "x509", "cas", "junk.pem"), []byte("not PEM"), 0o600); err != nil {
		t.Fatal(err)
	}
	h, err := localhub.Start(t.Context(), localhub.Options{Dir: dir, MQTTAddr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0"})
	if err == nil {
		h.Close()
		t.Fatal("Start succeeded with a registered CA file without a certificate")
	}
}

// TestX509RestartReusesCertificates: a second start keeps the certificate
// files byte for byte and lists them in hub.json; a start within 30 days
// of the certificate's expiry renews it.
func TestX509RestartReusesCertificates(t *testing.T) {
	dir := t.TempDir()
	first := startHub(t, localhub.Options{Dir: dir, X509Devices: []string{"xdev"}})
	f1 := first.Info().X509["xdev"]
	cert1, key1 := readFile(t, f1.CertFile), readFile(t, f1.KeyFile)
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	second := startHub(t, localhub.Options{Dir: dir, X509Devices: []string{"xdev"}})
	onDisk, err := localhub.ReadInfo(dir)
	if err != nil {
		t.Fatal(err)
	}
	if f2 := onDisk.X509["xdev"]; f2 != f1 {
		t.Errorf("hub.json x509 %+v, want %+v", f2, f1)
	}
	if string(readFile(t, f1.CertFile)) != string(cert1) || string(readFile(t, f1.KeyFile)) != string(key1) {
		t.Error("certificate files changed across restarts")
	}
	// Without --x509-device the files are still listed: the identity is.
	if err := second.Close(); err != nil {
		t.Fatal(err)
	}
	third := startHub(t, localhub.Options{Dir: dir})
	if got := third.Info().X509["xdev"]; got != f1 {
		t.Errorf("x509 without the option %+v, want %+v", got, f1)
	}
	if err := third.Close(); err != nil {
		t.Fatal(err)
	}
	old := x509Pair(t, onDisk, "xdev")
	soon := old.Leaf.NotAfter.Add(-29 * 24 * time.Hour)
	renewed := startHub(t, localhub.Options{Dir: dir, X509Devices: []string{"xdev"}, Now: func() time.Time { return soon }})
	pair := x509Pair(t, renewed.Info(), "xdev")
	if string(readFile(t, f1.CertFile)) == string(cert1) || !pair.Leaf.NotAfter.After(old.Leaf.NotAfter) {
		t.Errorf("certificate not renewed 29 days before expiry: NotAfter %v, was %v", pair.Leaf.NotAfter, old.Leaf.NotAfter)
	}
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestX509DeviceOptionRefused: an X.509 device id already registered with
// SAS, or an invalid id, fails Start.
func TestX509DeviceOptionRefused(t *testing.T) {
	for name, opts := range map[string]localhub.Options{
		"SAS identity": {Devices: []string{"dev1"}, X509Devices: []string{"dev1"}},
		"invalid id":   {X509Devices: []string{"a#b"}},
		"module":       {X509Devices: []string{"dev/mod"}},
	} {
		t.Run(name, func(t *testing.T) {
			opts.Dir, opts.MQTTAddr, opts.HTTPSAddr = t.TempDir(), "127.0.0.1:0", "127.0.0.1:0"
			h, err := localhub.Start(t.Context(), opts)
			if err == nil {
				h.Close()
				t.Fatalf("Start with X509Devices %v succeeded", opts.X509Devices)
			}
		})
	}
}

// TestRegistryX509Updates: an identity moves between authentication types
// over REST PUT; keys and thumbprints follow the type, and what does not
// fit the stored type is 400004.
func TestRegistryX509Updates(t *testing.T) {
	th := startHub(t, localhub.Options{})
	tp := strings.Repeat("AB", 32)
	put := func(body string) identityDoc {
		t.Helper()
		return wantIdentity(t, th.call(t, http.MethodPut, "/devices/u1", []byte(body), "If-Match", "*"))
	}
	d := put(`{"authentication":{"type":"selfSigned","x509Thumbprint":{"primaryThumbprint":"` + tp + `"}}}`)
	if d.Authentication.Type != "selfSigned" || d.ETag != "MA==" {
		t.Fatalf("created %+v", d)
	}
	// No type: the stored one; no thumbprints: kept; keys do not fit.
	d = put(`{"status":"enabled"}`)
	if d.Authentication.Type != "selfSigned" || d.Authentication.X509Thumbprint["primaryThumbprint"] == nil {
		t.Errorf("update without authentication: %+v", d.Authentication)
	}
	r := th.call(t, http.MethodPut, "/devices/u1", []byte(`{"authentication":{"symmetricKey":{"primaryKey":"`+givenPrimary+`"}}}`), "If-Match", "*")
	wantLegacyError(t, r, iothub.CodeArgumentInvalid)
	d = put(`{"authentication":{"type":"certificateAuthority"}}`)
	if a := d.Authentication; a.Type != "certificateAuthority" || a.X509Thumbprint["primaryThumbprint"] != nil || a.SymmetricKey.PrimaryKey != "" {
		t.Errorf("to certificateAuthority: %+v", a)
	}
	d = put(`{"authentication":{"type":"sas"}}`)
	if a := d.Authentication; a.Type != "sas" || a.SymmetricKey.PrimaryKey == "" || a.SymmetricKey.SecondaryKey == "" {
		t.Errorf("to sas: %+v", a)
	}
	th.mustConnect(t, "u1") // hub.json has its key again
	d = put(`{"authentication":{"type":"selfSigned","x509Thumbprint":{"primaryThumbprint":"` + tp + `"}}}`)
	if _, ok := th.Info().Devices["u1"]; !ok || d.Authentication.SymmetricKey.PrimaryKey != "" {
		t.Errorf("back to selfSigned: %+v", d.Authentication)
	}
	cs, err := iothub.ParseDeviceConnectionString(th.Info().Devices["u1"])
	if err != nil || !cs.X509 {
		t.Errorf("connection string %q (%v), want x509=true", th.Info().Devices["u1"], err)
	}
	th.wantRefused(t, th.keyCreds(t, "u1", "", givenPrimary), localhub.ErrCertificate)
}

// TestX509Module: a module identity authenticates by thumbprint too, and
// a CA-signed one needs the CN "device/module".
func TestX509Module(t *testing.T) {
	th := startHub(t, localhub.Options{})
	self := makeCert(t, certSpec{cn: "m"}, nil)
	_, tp := thumbprints(self)
	wantIdentity(t, th.call(t, http.MethodPut, "/devices/dev1/modules/ms", []byte(`{"authentication":{"type":"selfSigned","x509Thumbprint":{"primaryThumbprint":"`+tp+`"}}}`)))
	if _, err := th.connect(t, th.certCreds("dev1/ms"), th.withCert(&self.tls, "")); err != nil {
		t.Errorf("selfSigned module: %v", err)
	}
	wantIdentity(t, th.call(t, http.MethodPut, "/devices/dev1/modules/mc", []byte(`{"authentication":{"type":"certificateAuthority"}}`)))
	ca := hubCA(t, th.opts.Dir)
	deviceCN := makeCert(t, certSpec{cn: "dev1", clientAuth: true}, &ca)
	th.wantCertRefused(t, th.certCreds("dev1/mc"), &deviceCN.tls, localhub.ErrCertificate)
	moduleCN := makeCert(t, certSpec{cn: "dev1/mc", clientAuth: true}, &ca)
	if _, err := th.connect(t, th.certCreds("dev1/mc"), th.withCert(&moduleCN.tls, "")); err != nil {
		t.Errorf("certificateAuthority module with CN dev1/mc: %v", err)
	}
}
