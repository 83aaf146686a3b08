package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/methodd/methodd/internal/localhub"
	"github.com/methodd/methodd/internal/testkit"
	"github.com/methodd/methodd/iothub"
)

// TestHubCommandSmoke drives the built binary as a user would: start
// `methodd hub` on free ports, wait for hub.json, answer one method with a
// real MQTT device while calling it over HTTPS, then SIGTERM → exit 0.
func TestHubCommandSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	tmp := t.TempDir()
	bin := buildMethodd(t)
	dir := filepath.Join(tmp, "hub")
	cmd := exec.Command(bin, "hub", "--dir", dir, "--mqtt-addr", "127.0.0.1:0", "--https-addr", "127.0.0.1:0", "--log-format", "json")
	stderr := &testkit.SyncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		if t.Failed() {
			t.Logf("methodd hub stderr:\n%s", stderr.String())
		}
	})

	info := hubSmokeWaitInfo(t, dir, exited)
	pool := x509.NewCertPool()
	if pem, err := os.ReadFile(info.CAFile); err != nil || !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("CA %s: %v", info.CAFile, err)
	}
	hubSmokeEchoDevice(t, info.Devices["dev-device"], pool)
	status, body := hubSmokePost(t, info.ServiceConnectionString, pool, `{"methodName":"ping","payload":{"n":1},"responseTimeoutInSeconds":10}`)
	if status != 200 || body != `{"status":200,"payload":{"n":1}}` {
		t.Fatalf("POST: %d %s", status, body)
	}
	if !strings.Contains(stderr.String(), filepath.Join(dir, "hub.json")) {
		t.Errorf("stderr does not say where hub.json is:\n%s", stderr.String())
	}

	stopWithSIGTERM(t, cmd, exited, 15*time.Second)
	if strings.Contains(stderr.String(), "sig=") {
		t.Error("a token was logged")
	}
}

// hubSmokeWaitInfo waits for hub.json with the default device in it.
func hubSmokeWaitInfo(t *testing.T, dir string, exited <-chan error) localhub.Info {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		info, err := localhub.ReadInfo(dir)
		if err == nil && info.Devices["dev-device"] != "" {
			return info
		}
		select {
		case err := <-exited:
			t.Fatalf("methodd hub exited early: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no hub.json in %s: %v", dir, err)
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
}

// hubSmokeEchoDevice connects like an SDK device and echoes every request.
func hubSmokeEchoDevice(t *testing.T, connStr string, pool *x509.CertPool) {
	t.Helper()
	cs, err := iothub.ParseDeviceConnectionString(connStr)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := iothub.Sign(iothub.IdentityResource(cs.HostName, cs.DeviceID, cs.ModuleID), cs.SharedAccessKey, "", time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(paho.NewClientOptions().
		AddBroker("ssl://" + cs.DialHost()).
		SetTLSConfig(&tls.Config{RootCAs: pool}).
		SetClientID(cs.ClientID()).
		SetUsername(iothub.Username(cs.HostName, cs.ClientID(), "")).
		SetPassword(tok).
		SetProtocolVersion(4).
		SetCleanSession(false).
		SetAutoReconnect(false))
	if tk := c.Connect(); !tk.WaitTimeout(10*time.Second) || tk.Error() != nil {
		t.Fatalf("device connect: %v", tk.Error())
	}
	t.Cleanup(func() { c.Disconnect(0) })
	tk := c.Subscribe(iothub.MethodsSubscription, 0, func(c paho.Client, m paho.Message) {
		_, rid, err := iothub.ParseMethodRequestTopic(m.Topic())
		if err != nil {
			t.Errorf("request topic %q: %v", m.Topic(), err)
			return
		}
		c.Publish(iothub.MethodResponseTopic(200, rid), 0, false, m.Payload())
	})
	if !tk.WaitTimeout(10*time.Second) || tk.Error() != nil {
		t.Fatalf("subscribe: %v", tk.Error())
	}
}

// hubSmokePost invokes dev-device's method over HTTPS with a service SAS.
func hubSmokePost(t *testing.T, serviceCS string, pool *x509.CertPool, body string) (int, string) {
	t.Helper()
	cs, err := iothub.ParseServiceConnectionString(serviceCS)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := iothub.Sign(cs.HostName, cs.SharedAccessKey, cs.SharedAccessKeyName, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, "https://"+cs.HostName+iothub.MethodsPath("dev-device", "")+"?"+iothub.MethodsQuery, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", tok)
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestHubCommandUsage: flag and argument errors exit 2 before anything
// starts (the hub would otherwise bind the default ports).
func TestHubCommandUsage(t *testing.T) {
	cases := []struct {
		name string
		args []string
		env  map[string]string
	}{
		{"bad log format", []string{"hub", "--dir", t.TempDir(), "--log-format", "xml"}, nil},
		{"bad log level", []string{"hub", "--dir", t.TempDir(), "--log-level", "loud"}, nil},
		{"extra argument", []string{"hub", "--dir", t.TempDir(), "extra"}, nil},
		{"unknown flag", []string{"hub", "--nope"}, nil},
		{"no state dir", []string{"hub"}, map[string]string{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			s := stdio{in: strings.NewReader(""), out: &out, err: &errb, getenv: func(k string) string { return tc.env[k] }}
			if code := run(t.Context(), tc.args, s); code != exitUsage {
				t.Errorf("exit %d, want %d; stderr %s", code, exitUsage, errb.String())
			}
		})
	}
}
