package device

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/methodd/methodd/internal/localhub"
	"github.com/methodd/methodd/internal/logkey"
	"github.com/methodd/methodd/internal/testkit"
	"github.com/methodd/methodd/iothub"
)

// dpsHub starts a local hub with a DPS endpoint (group "gw", individual
// enrollment "dev-01") and returns it with its CA pool.
func dpsHub(t *testing.T, faults localhub.Faults) (*localhub.Hub, *x509.CertPool) {
	t.Helper()
	h, err := localhub.Start(context.Background(), localhub.Options{
		Dir: t.TempDir(), MQTTAddr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0",
		DPSAddr: "127.0.0.1:0", DPSWSAddr: "127.0.0.1:0",
		EnrollmentGroups: []string{"gw"}, Enrollments: []string{"dev-01"}, Faults: faults,
	})
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

// dpsConfig is a registration of reg with key against h.
func dpsConfig(h *localhub.Hub, pool *x509.CertPool, reg, key string) ProvisionConfig {
	dps := h.Info().DPS
	return ProvisionConfig{
		Endpoint:       "localhost:" + port(dps.Addr),
		IDScope:        dps.IDScope,
		RegistrationID: reg,
		SymmetricKey:   key,
		RootCAs:        pool,
		ProductInfo:    "methodd-test/1.0",
		RequestTimeout: 10 * time.Second,
	}
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

func TestProvisionAssigns(t *testing.T) {
	h, pool := dpsHub(t, localhub.Faults{})
	dps := h.Info().DPS
	derived, err := iothub.DeriveDeviceKey(dps.Groups["gw"], "sensor-42")
	if err != nil {
		t.Fatal(err)
	}
	wsCfg := dpsConfig(h, pool, "sensor-43", "")
	wsCfg.SymmetricKey, _ = iothub.DeriveDeviceKey(dps.Groups["gw"], "sensor-43")
	wsCfg.Transport = TransportMQTTWS
	wsCfg.Endpoint = "localhost:" + port(dps.WSAddr)
	for name, c := range map[string]ProvisionConfig{
		"individual": dpsConfig(h, pool, "dev-01", dps.Enrollments["dev-01"]),
		"group":      dpsConfig(h, pool, "sensor-42", derived),
		"group/wss":  wsCfg,
	} {
		t.Run(name, func(t *testing.T) {
			a, err := Provision(context.Background(), c)
			if err != nil {
				t.Fatalf("Provision: %v", err)
			}
			if a.AssignedHub != localhub.HostName || a.DeviceID != c.RegistrationID || a.Substatus != "initialAssignment" ||
				a.State.Status != iothub.DPSStatusAssigned || a.State.RegistrationID != c.RegistrationID {
				t.Fatalf("assignment %+v", a)
			}
			cs, err := iothub.ParseDeviceConnectionString(h.Info().Devices[c.RegistrationID])
			if err != nil || cs.SharedAccessKey != c.SymmetricKey {
				t.Fatalf("hub registry: key %q, want the device key (%v)", cs.SharedAccessKey, err)
			}
		})
	}
}

func TestProvisionWrongKey(t *testing.T) {
	h, pool := dpsHub(t, localhub.Faults{})
	c := dpsConfig(h, pool, "dev-01", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
	_, err := Provision(context.Background(), c)
	var pe *ProvisionError
	if !errors.As(err, &pe) || pe.Status != 401 || pe.ErrorCode != 401002 || pe.Temporary() || pe.TrackingID == "" {
		t.Fatalf("got %v (%+v), want a 401002 ProvisionError, not temporary", err, pe)
	}
	if strings.Contains(err.Error(), c.SymmetricKey) || strings.Contains(err.Error(), "sig=") {
		t.Fatalf("error %q holds a secret", err)
	}
}

func TestProvisionDisabled(t *testing.T) {
	h, pool := dpsHub(t, localhub.Faults{})
	if err := h.SetEnrollmentEnabled(localhub.EnrollmentIndividual, "dev-01", false); err != nil {
		t.Fatal(err)
	}
	_, err := Provision(context.Background(), dpsConfig(h, pool, "dev-01", h.Info().DPS.Enrollments["dev-01"]))
	var pe *ProvisionError
	if !errors.As(err, &pe) || pe.Status != 200 || pe.Temporary() || !strings.Contains(pe.Message, "disabled") {
		t.Fatalf("got %v, want a 200 disabled ProvisionError", err)
	}
}

func TestProvisionRetriesThrottling(t *testing.T) {
	h, pool := dpsHub(t, localhub.Faults{DPSThrottle: 2})
	start := time.Now()
	a, err := Provision(context.Background(), dpsConfig(h, pool, "dev-01", h.Info().DPS.Enrollments["dev-01"]))
	if err != nil || a.DeviceID != "dev-01" {
		t.Fatalf("Provision: %+v, %v", a, err)
	}
	if d := time.Since(start); d < 2*time.Second { // two 429s with retry-after=1 were honoured
		t.Fatalf("took %s, want ≥ 2s of retry-after", d)
	}
}

func TestProvisionGivesUpAfterRetries(t *testing.T) {
	h, pool := dpsHub(t, localhub.Faults{DPSThrottle: 100})
	_, err := Provision(context.Background(), dpsConfig(h, pool, "dev-01", h.Info().DPS.Enrollments["dev-01"]))
	var pe *ProvisionError
	if !errors.As(err, &pe) || pe.Status != 429 || !pe.Temporary() || pe.RetryAfter != time.Second {
		t.Fatalf("got %v, want a temporary 429 ProvisionError with retry-after 1s", err)
	}
}

func TestProvisionSilentService(t *testing.T) {
	h, pool := dpsHub(t, localhub.Faults{DPSSilent: true})
	c := dpsConfig(h, pool, "dev-01", h.Info().DPS.Enrollments["dev-01"])
	c.RequestTimeout = 500 * time.Millisecond
	start := time.Now()
	_, err := Provision(context.Background(), c)
	if !errors.Is(err, ErrProvisionTimeout) {
		t.Fatalf("got %v, want ErrProvisionTimeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %s", d)
	}
}

// silentListener accepts TLS-less TCP connections and never answers.
func silentListener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

func TestProvisionConnectTimeout(t *testing.T) {
	c := ProvisionConfig{
		Endpoint: silentListener(t), IDScope: "0ne00000001", RegistrationID: "dev-01",
		SymmetricKey: "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=", RequestTimeout: 500 * time.Millisecond,
	}
	// No deadline of its own: only RequestTimeout can end the wait.
	_, err := Provision(context.Background(), c)
	if !errors.Is(err, ErrProvisionTimeout) {
		t.Fatalf("got %v, want ErrProvisionTimeout (the connect bounded by RequestTimeout)", err)
	}
}

func TestProvisionContextCancel(t *testing.T) {
	h, pool := dpsHub(t, localhub.Faults{DPSSilent: true})
	c := dpsConfig(h, pool, "dev-01", h.Info().DPS.Enrollments["dev-01"])
	c.RequestTimeout = time.Minute
	ctx, cancel := context.WithCancel(context.Background())
	logs := &records{}
	c.Logger = slog.New(logs)
	errc := make(chan error, 1)
	go func() { _, err := Provision(ctx, c); errc <- err }()
	// The client records its connection (with the URL it dialled) before
	// it registers: cancel while it waits for DPS's answer.
	testkit.Eventually(t, 10*time.Second, "the DPS connection", func() bool {
		return len(logs.matching(slog.LevelDebug, map[string]any{logkey.Dial: nil})) > 0
	})
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Provision did not end after cancel")
	}
}

func TestProvisionConfigErrors(t *testing.T) {
	for name, c := range map[string]ProvisionConfig{
		"no scope":      {RegistrationID: "d", SymmetricKey: "a2V5"},
		"no reg":        {IDScope: "s", SymmetricKey: "a2V5"},
		"no key":        {IDScope: "s", RegistrationID: "d"},
		"both":          {IDScope: "s", RegistrationID: "d", SymmetricKey: "a2V5", ClientCert: &tls.Certificate{}},
		"transport":     {IDScope: "s", RegistrationID: "d", SymmetricKey: "a2V5", Transport: "amqp"},
		"bad key (b64)": {IDScope: "s", RegistrationID: "d", SymmetricKey: "not base64!", Endpoint: "127.0.0.1:1"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Provision(context.Background(), c)
			if err == nil {
				t.Fatal("no error")
			}
			if c.SymmetricKey != "" && strings.Contains(err.Error(), c.SymmetricKey) {
				t.Fatalf("error %q holds the key", err)
			}
		})
	}
}

func TestProvisionBrokerURL(t *testing.T) {
	for _, tc := range []struct{ endpoint, transport, want string }{
		{"", "", "tls://" + iothub.DPSGlobalEndpoint + ":8883"},
		{"", TransportMQTTWS, "wss://" + iothub.DPSGlobalEndpoint + ":443/$iothub/websocket"},
		{"localhost:8884", "", "tls://localhost:8884"},
	} {
		c, err := ProvisionConfig{Endpoint: tc.endpoint, Transport: tc.transport, IDScope: "s", RegistrationID: "d", SymmetricKey: "a2V5"}.withDefaults()
		if err != nil {
			t.Fatal(err)
		}
		if got := c.brokerURL(); got != tc.want {
			t.Errorf("brokerURL(%q, %q) = %q, want %q", tc.endpoint, tc.transport, got, tc.want)
		}
	}
}

func TestRetryDelay(t *testing.T) {
	for in, want := range map[time.Duration]time.Duration{0: 2 * time.Second, 3 * time.Second: 3 * time.Second, time.Hour: time.Minute} {
		if got := retryDelay(in); got != want {
			t.Errorf("retryDelay(%s) = %s, want %s", in, got, want)
		}
	}
}
