// Command rawdevice is the benchmark's floor: the least a device can do to
// answer IoT Hub direct methods over MQTT/TLS with paho. It echoes every
// request's payload with status 200 from inside paho's callback: no session
// management, no reconnects, no dispatch, no engine. It exists only so that
// test/bench can measure methodd against the cost of the transport alone.
//
// It is a separate module so that the methodd module keeps exactly one paho
// importer (internal/device, enforced by deps_test.go); the floor must not go
// through that package, or it would not be a floor.
//
// The harness mints the credentials: flags name the broker, CA, client id and
// MQTT username; the SAS token comes in $RAWDEVICE_PASSWORD. It prints
// "ready" on stdout once the methods subscription is acknowledged and exits 0
// on SIGTERM, SIGINT or end of stdin.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

const (
	methodsTopic = "$iothub/methods/POST/#"
	ridMarker    = "/?$rid="
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Getenv("RAWDEVICE_PASSWORD")); err != nil {
		fmt.Fprintln(os.Stderr, "rawdevice:", err)
		stop()
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer, password string) error {
	fs := flag.NewFlagSet("rawdevice", flag.ContinueOnError)
	addr := fs.String("addr", "", "hub MQTT/TLS address host:port (loopback)")
	caFile := fs.String("ca", "", "CA certificate (PEM) that signed the hub's certificate")
	serverName := fs.String("server-name", "localhost", "TLS server name")
	clientID := fs.String("client-id", "", "MQTT client id (the device id)")
	username := fs.String("username", "", "MQTT username ({host}/{device}/?api-version=...)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *addr == "" || *caFile == "" || *clientID == "" || *username == "" || password == "" {
		return errors.New("-addr, -ca, -client-id, -username and $RAWDEVICE_PASSWORD are required")
	}
	pem, err := os.ReadFile(*caFile)
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return fmt.Errorf("%s: no certificate", *caFile)
	}
	opts := mqtt.NewClientOptions().
		AddBroker("tls://" + *addr).
		SetClientID(*clientID).
		SetUsername(*username).
		SetPassword(password).
		SetProtocolVersion(4).
		SetCleanSession(false).
		SetKeepAlive(180 * time.Second).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetTLSConfig(&tls.Config{RootCAs: roots, ServerName: *serverName, MinVersion: tls.VersionTLS12})
	c := mqtt.NewClient(opts)
	if err := wait(c.Connect(), "connect"); err != nil {
		return err
	}
	defer c.Disconnect(250)
	echo := func(c mqtt.Client, m mqtt.Message) {
		i := strings.Index(m.Topic(), ridMarker)
		if i < 0 {
			return
		}
		c.Publish("$iothub/methods/res/200"+m.Topic()[i:], 0, false, m.Payload())
	}
	if err := wait(c.Subscribe(methodsTopic, 0, echo), "subscribe"); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "ready")
	eof := make(chan struct{})
	go func() { // exits with the process: stdin is the harness's pipe
		_, _ = io.Copy(io.Discard, stdin)
		close(eof)
	}()
	select {
	case <-ctx.Done():
	case <-eof:
	}
	return nil
}

// wait waits for t at most 10 s.
func wait(t mqtt.Token, what string) error {
	if !t.WaitTimeout(10 * time.Second) {
		return fmt.Errorf("%s: timed out", what)
	}
	if err := t.Error(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}
