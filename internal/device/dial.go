package device

import (
	"crypto/tls"
	"net"
	"net/http"
	"strings"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/methodd/methodd/iothub"
)

// Default ports of the two transports (§3.1).
const (
	portMQTT = "8883"
	portWS   = "443"
)

// websocketPath is where the hub serves MQTT over WebSockets (§3.1).
const websocketPath = "/$iothub/websocket"

// brokerURL is the paho broker address for the identity's dial host:
// tls://host:8883 or wss://host:443/$iothub/websocket, unless the dial host
// (GatewayHostName or HostName) carries its own port.
func (c *Config) brokerURL() string {
	host := c.Identity.DialHost()
	if c.Transport == TransportMQTTWS {
		return "wss://" + withPort(host, portWS) + websocketPath
	}
	return "tls://" + withPort(host, portMQTT)
}

// withPort appends port to host unless it has one.
func withPort(host, port string) string {
	if _, _, err := net.SplitHostPort(host); err == nil {
		return host
	}
	return net.JoinHostPort(strings.Trim(host, "[]"), port)
}

// serverName is the TLS server name: the dial host without its port.
func serverName(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		return h
	}
	return strings.Trim(host, "[]")
}

// tlsConfig is the TLS configuration of every connection.
func (c *Config) tlsConfig() *tls.Config {
	tc := &tls.Config{
		MinVersion: tls.VersionTLS12,
		RootCAs:    c.RootCAs,
		ServerName: serverName(c.Identity.DialHost()),
	}
	if c.ClientCert != nil {
		tc.Certificates = []tls.Certificate{*c.ClientCert}
	}
	return tc
}

// clientOptions are the paho options of one connection. Paho's own
// reconnect and retry are off: the session owns the connection lifecycle
// and builds a fresh client (with a fresh password) for every connection.
func (c *Config) clientOptions(password string, onMessage mqtt.MessageHandler, onLost mqtt.ConnectionLostHandler) *mqtt.ClientOptions {
	clientID := c.Identity.ClientID()
	o := mqtt.NewClientOptions()
	o.AddBroker(c.brokerURL())
	o.SetClientID(clientID)
	o.SetUsername(iothub.Username(c.Identity.HostName, clientID, c.ProductInfo))
	o.SetPassword(password)
	o.SetProtocolVersion(4) // MQTT 3.1.1, no fallback to 3.1
	o.SetCleanSession(false)
	o.SetAutoReconnect(false)
	o.SetConnectRetry(false)
	o.SetResumeSubs(false)
	o.SetKeepAlive(c.KeepAlive)
	// A PINGREQ goes out after KeepAlive of silence from the hub; waiting at
	// most half of it for the PINGRESP bounds the detection of a dead link
	// (black hole, half-open TCP) at 1.5 × KeepAlive. Paho's default, a
	// fixed 10 s, made a 2 s keep-alive notice after ~12 s.
	o.SetPingTimeout(c.KeepAlive / 2)
	o.SetConnectTimeout(c.DialTimeout)
	o.SetWriteTimeout(c.DialTimeout)
	o.SetTLSConfig(c.tlsConfig())
	o.SetOrderMatters(true) // onMessage never blocks: it only hands off
	o.SetDefaultPublishHandler(onMessage)
	o.SetConnectionLostHandler(onLost)
	o.SetWebsocketOptions(&mqtt.WebsocketOptions{Proxy: http.ProxyFromEnvironment})
	if c.openConn != nil { // tests only: see Config.openConn
		o.SetCustomOpenConnectionFn(c.openConn)
	}
	return o
}
