package conformance

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/methodd/methodd/internal/localhub"
	"github.com/methodd/methodd/iothub"
)

// localhostAddr turns the hub's "127.0.0.1:PORT" into "localhost:PORT", the
// host name its certificate and connection strings use.
func localhostAddr(addr string) (string, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("address %q: %w", addr, err)
	}
	return net.JoinHostPort(localhub.HostName, port), nil
}

// provLine is one stdout line of provision.js (event, the suite's common
// type, does not name these fields; it is re-parsed from event.Raw).
type provLine struct {
	Event              string  `json:"event"`
	Where              string  `json:"where"`
	Name               string  `json:"name"`
	Message            string  `json:"message"`
	Status             *int    `json:"status"` // error: the DPS response status
	Result             *string `json:"result"` // error: JSON of err.result (the response body)
	RegistrationStatus string  `json:"registrationStatus"`
	AssignedHub        string  `json:"assignedHub"`
	DeviceID           string  `json:"deviceId"`
	RegistrationID     string  `json:"registrationId"`
	State              string  `json:"state"` // JSON of registrationState
	Topic              string  `json:"topic"` // dps: the response topic

	line string
}

func (l provLine) String() string { return l.line }

func parseProvLine(e event) provLine {
	var l provLine
	_ = json.Unmarshal([]byte(e.Raw), &l)
	l.line = e.Raw
	return l
}

// provSpec says how provision.js registers: with an individual
// enrollment's key, an enrollment group's key (provision.js derives the
// device key) or an X.509 certificate (X509Security), over MQTT or MQTT over
// WebSockets, and whether it then connects to the assigned hub.
type provSpec struct {
	key          string
	groupKey     string
	certFile     string // X.509 attestation (X509Security): certificate and key files
	keyFile      string
	websocket    bool
	becomeDevice bool
}

// startProvision runs provision.js for regID against the hub's DPS endpoint.
func (h *hubEnv) startProvision(ctx context.Context, t *testing.T, regID string, s provSpec) (*node, error) {
	if h.info.DPS == nil {
		return nil, fmt.Errorf("the hub's Info has no DPS member (Options.DPSAddr was set)")
	}
	dpsHost, err := localhostAddr(h.info.DPS.Addr)
	if err != nil {
		return nil, err
	}
	args := []string{"provision.js"}
	env := []string{
		"DPS_ID_SCOPE=" + h.info.DPS.IDScope,
		"DPS_REGISTRATION_ID=" + regID,
		// The provisioning transport takes no CA option: Node's default trust store plus this.
		"NODE_EXTRA_CA_CERTS=" + h.info.CAFile,
		"DEVICE_CA_FILE=" + h.info.CAFile,
	}
	var redirects []string
	if s.websocket {
		if h.info.DPS.WSAddr == "" {
			return nil, fmt.Errorf("the hub's Info.DPS has no wsAddr (Options.DPSWSAddr was set)")
		}
		// MqttWs dials wss://HOST:443/$iothub/websocket.
		env = append(env, "DPS_TRANSPORT=mqttws", "DPS_HOST="+localhub.HostName)
		redirects = append(redirects, localhub.HostName+":443="+h.info.DPS.WSAddr)
	} else {
		env = append(env, "DPS_HOST="+dpsHost)
	}
	if s.certFile != "" && s.becomeDevice {
		// An X.509 device dials HostName:8883 (see mqtt_redirect.js).
		redirects = append(redirects, localhub.HostName+":8883="+h.info.MQTTAddr)
	}
	if len(redirects) > 0 {
		env = append(env, "METHODD_MQTT_REDIRECT="+strings.Join(redirects, ","))
		args = []string{"-r", "./mqtt_redirect.js", "provision.js"}
	}
	switch {
	case s.key != "":
		env = append(env, "DPS_KEY="+s.key)
	case s.groupKey != "":
		env = append(env, "DPS_GROUP_KEY="+s.groupKey)
	case s.certFile != "":
		env = append(env, "DPS_CERT_FILE="+s.certFile, "DPS_CERT_KEY_FILE="+s.keyFile)
	default:
		return nil, fmt.Errorf("provision %s: no key", regID)
	}
	if s.becomeDevice {
		gw, err := localhostAddr(h.info.MQTTAddr)
		if err != nil {
			return nil, err
		}
		env = append(env, "HUB_GATEWAY="+gw)
	}
	return startNode(ctx, t, "provision.js ("+regID+")", env, args...)
}

// dpsResponse is one DPS response provision.js's transport received.
type dpsResponse struct {
	status     int
	retryAfter time.Duration
	body       string
}

// dpsResponses returns the DPS responses provision.js reported so far,
// checking that each has a response topic and a JSON object body (the SDK
// JSON.parses every body; §5.5).
func dpsResponses(p *node) ([]dpsResponse, error) {
	var out []dpsResponse
	var problems []string
	for _, e := range p.snapshot() {
		if e.Event != "dps" {
			continue
		}
		l := parseProvLine(e)
		status, _, retryAfter, err := iothub.ParseDPSResponseTopic(l.Topic)
		if err != nil {
			problems = append(problems, fmt.Sprintf("response topic %q: %v", l.Topic, err))
			continue
		}
		body := strp(e.Body)
		var obj map[string]any
		if err := json.Unmarshal([]byte(body), &obj); err != nil {
			problems = append(problems, fmt.Sprintf("response on %s: body %q is not a JSON object", l.Topic, body))
		}
		out = append(out, dpsResponse{status: status, retryAfter: retryAfter, body: body})
	}
	return out, joinProblems(problems)
}

// registration waits for provision.js's registration outcome: the
// registered line, or the error line of a failed register.
func registration(ctx context.Context, p *node) (provLine, error) {
	ev, err := p.waitFor(ctx, "registration result", func(e event) bool {
		return e.Event == "registered" || (e.Event == "error" && (e.Where == "register" || e.Where == "main"))
	})
	if err != nil {
		return provLine{}, err
	}
	return parseProvLine(ev), nil
}

// startX509Device runs device.js as an X.509 device: connection string
// `HostName=localhost;DeviceId=ID;x509=true`, the certificate and key as
// setOptions({cert, key}), and mqtt_redirect.js sending the SDK's
// localhost:8883 to the hub's MQTT port.
func (h *hubEnv) startX509Device(ctx context.Context, t *testing.T, name, id, certFile, keyFile string) (*node, error) {
	env := []string{
		"DEVICE_CONNECTION_STRING=HostName=" + localhub.HostName + ";DeviceId=" + id + ";x509=true",
		"DEVICE_CA_FILE=" + h.info.CAFile,
		"DEVICE_CERT_FILE=" + certFile,
		"DEVICE_KEY_FILE=" + keyFile,
		"METHODD_MQTT_REDIRECT=" + localhub.HostName + ":8883=" + h.info.MQTTAddr,
	}
	return startNode(ctx, t, "device.js ("+name+")", env, "-r", "./mqtt_redirect.js", "device.js")
}

// openOutcome waits until device.js is ready or its open failed.
func openOutcome(ctx context.Context, d *node) (event, error) {
	return d.waitFor(ctx, "ready or open failure", func(e event) bool {
		return e.Event == "ready" || (e.Event == "error" && e.Where == "main")
	})
}

// selfSignedCert is a client certificate made by the test (self-signed, or
// signed with the hub's CA by newCASignedCert).
type selfSignedCert struct {
	certFile, keyFile string
	der               []byte
}

// sha1Thumbprint and sha256Thumbprint are the certificate's thumbprints as
// the portal and az CLI show them: upper-case hex of the DER.
func (c selfSignedCert) sha1Thumbprint() string {
	s := sha1.Sum(c.der)
	return strings.ToUpper(hex.EncodeToString(s[:]))
}

func (c selfSignedCert) sha256Thumbprint() string {
	s := sha256.Sum256(c.der)
	return strings.ToUpper(hex.EncodeToString(s[:]))
}

// newSelfSignedCert writes a self-signed P-256 client certificate with
// CommonName cn (like `openssl req -x509` for a device) into a temporary
// directory.
func newSelfSignedCert(t *testing.T, cn string) (selfSignedCert, error) {
	return newClientCert(t, cn, nil, nil)
}

// newCASignedCert writes a client certificate with CommonName cn signed by
// the hub's CA (DIR/ca.pem and ca-key.pem, beside Info.CAFile), as an
// operator holding the CA would issue one for an X.509 enrollment group.
func (h *hubEnv) newCASignedCert(t *testing.T, cn string) (selfSignedCert, error) {
	dir := filepath.Dir(h.info.CAFile)
	pair, err := tls.LoadX509KeyPair(h.info.CAFile, filepath.Join(dir, "ca-key.pem"))
	if err != nil {
		return selfSignedCert{}, fmt.Errorf("the hub's CA: %w", err)
	}
	return newClientCert(t, cn, pair.Leaf, pair.PrivateKey)
}

// newClientCert writes a P-256 client certificate for cn, signed by parent
// (self-signed when parent is nil), into a temporary directory.
func newClientCert(t *testing.T, cn string, parent *x509.Certificate, parentKey any) (selfSignedCert, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return selfSignedCert{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		return selfSignedCert{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		return selfSignedCert{}, err
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return selfSignedCert{}, err
	}
	dir := t.TempDir()
	c := selfSignedCert{certFile: filepath.Join(dir, cn+".pem"), keyFile: filepath.Join(dir, cn+"-key.pem"), der: der}
	if err := os.WriteFile(c.certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return selfSignedCert{}, err
	}
	if err := os.WriteFile(c.keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}), 0o600); err != nil {
		return selfSignedCert{}, err
	}
	return c, nil
}

// x509Registry runs x509_registry.js (azure-iothub Registry) with the hub's
// service connection string and the redirect preload.
func (h *hubEnv) x509Registry(ctx context.Context, t *testing.T) (*twinProc, error) {
	env := []string{
		"SERVICE_CONNECTION_STRING=" + h.serviceCS,
		"NODE_EXTRA_CA_CERTS=" + h.info.CAFile,
		"METHODD_REDIRECT=" + h.redirect,
	}
	n, err := startNode(ctx, t, "x509_registry.js", env, "-r", "./redirect.js", "x509_registry.js")
	if err != nil {
		return nil, err
	}
	return waitReady(ctx, n)
}
