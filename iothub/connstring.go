package iothub

import (
	"encoding/base64"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Connection-string key names, in their canonical spelling (§1.1).
const (
	keyHostName              = "HostName"
	keyDeviceID              = "DeviceId"
	keyModuleID              = "ModuleId"
	keySharedAccessKey       = "SharedAccessKey"
	keySharedAccessKeyName   = "SharedAccessKeyName"
	keySharedAccessSignature = "SharedAccessSignature"
	keyX509                  = "x509"
	keyGatewayHostName       = "GatewayHostName"
	keyUseProvisioning       = "UseProvisioning"
)

// ErrConnectionString is wrapped by every connection-string parse error.
var ErrConnectionString = errors.New("invalid connection string")

// ConnectionString is a parsed device, module or service connection string.
// Its String method renders it again; it holds secrets, so never log it.
type ConnectionString struct {
	HostName              string // hub host, may carry ":port" (local hub)
	DeviceID              string
	ModuleID              string
	SharedAccessKey       string // base64
	SharedAccessKeyName   string // policy name (service strings)
	SharedAccessSignature string // a complete pre-made token
	X509                  bool
	GatewayHostName       string // dial this host (may carry ":port") instead of HostName
}

// ParseConnectionString splits s into its keys (§1): pairs separated by ';',
// each split at its first '='; the last of a duplicated key wins. Unknown keys
// and empty values are errors. Errors name the offending key or pair number,
// never a value. It does not check which keys are required: use
// ParseDeviceConnectionString or ParseServiceConnectionString for that.
func ParseConnectionString(s string) (ConnectionString, error) {
	var c ConnectionString
	if strings.TrimSpace(s) == "" {
		return c, fmt.Errorf("%w: empty", ErrConnectionString)
	}
	for i, pair := range strings.Split(strings.TrimSpace(s), ";") {
		if pair == "" {
			continue // tolerate a trailing ';'
		}
		k, v, ok := strings.Cut(pair, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return c, fmt.Errorf("%w: pair %d is not Key=Value", ErrConnectionString, i+1)
		}
		if v == "" {
			return c, fmt.Errorf("%w: %s has an empty value", ErrConnectionString, k)
		}
		if err := c.set(k, v); err != nil {
			return c, err
		}
	}
	if c == (ConnectionString{}) {
		return c, fmt.Errorf("%w: no Key=Value pairs", ErrConnectionString)
	}
	return c, nil
}

func (c *ConnectionString) set(k, v string) error {
	switch k {
	case keyHostName:
		c.HostName = v
	case keyDeviceID:
		c.DeviceID = v
	case keyModuleID:
		c.ModuleID = v
	case keySharedAccessKey:
		if _, err := base64.StdEncoding.DecodeString(v); err != nil {
			return fmt.Errorf("%w: %s is not valid base64", ErrConnectionString, k)
		}
		c.SharedAccessKey = v
	case keySharedAccessKeyName:
		c.SharedAccessKeyName = v
	case keySharedAccessSignature:
		if _, err := ParseSAS(v); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrConnectionString, k, err)
		}
		c.SharedAccessSignature = v
	case keyX509:
		if v != "true" {
			return fmt.Errorf("%w: x509 must be \"true\"", ErrConnectionString)
		}
		c.X509 = true
	case keyGatewayHostName:
		c.GatewayHostName = v
	case keyUseProvisioning:
		// C SDK DPS flag: accepted and ignored (§1.1).
	default:
		return fmt.Errorf("%w: unknown key %q (known: %s)", ErrConnectionString, k, strings.Join(knownKeys(), ", "))
	}
	return nil
}

func knownKeys() []string {
	k := []string{keyHostName, keyDeviceID, keyModuleID, keySharedAccessKey, keySharedAccessKeyName,
		keySharedAccessSignature, keyX509, keyGatewayHostName}
	sort.Strings(k)
	return k
}

// ParseDeviceConnectionString parses a device or module connection string and
// requires HostName, DeviceId and exactly one of SharedAccessKey,
// SharedAccessSignature and x509=true (§1.1).
func ParseDeviceConnectionString(s string) (ConnectionString, error) {
	c, err := ParseConnectionString(s)
	if err != nil {
		return c, err
	}
	if c.HostName == "" {
		return c, fmt.Errorf("%w: missing HostName", ErrConnectionString)
	}
	if c.DeviceID == "" {
		return c, fmt.Errorf("%w: missing DeviceId (is this a service connection string?)", ErrConnectionString)
	}
	n := 0
	for _, set := range []bool{c.SharedAccessKey != "", c.SharedAccessSignature != "", c.X509} {
		if set {
			n++
		}
	}
	if n != 1 {
		return c, fmt.Errorf("%w: need exactly one of SharedAccessKey, SharedAccessSignature, x509=true (found %d)", ErrConnectionString, n)
	}
	return c, nil
}

// ParseServiceConnectionString parses a hub-level (service) connection string:
// HostName, SharedAccessKeyName and SharedAccessKey are required, DeviceId is
// refused (§1.2).
func ParseServiceConnectionString(s string) (ConnectionString, error) {
	c, err := ParseConnectionString(s)
	if err != nil {
		return c, err
	}
	switch {
	case c.HostName == "":
		return c, fmt.Errorf("%w: missing HostName", ErrConnectionString)
	case c.DeviceID != "":
		return c, fmt.Errorf("%w: has DeviceId; a service connection string names a policy (is this a device connection string?)", ErrConnectionString)
	case c.SharedAccessKeyName == "":
		return c, fmt.Errorf("%w: missing SharedAccessKeyName", ErrConnectionString)
	case c.SharedAccessKey == "":
		return c, fmt.Errorf("%w: missing SharedAccessKey", ErrConnectionString)
	}
	return c, nil
}

// String renders c in canonical key order. The result contains secrets.
func (c ConnectionString) String() string {
	var b strings.Builder
	add := func(k, v string) {
		if v == "" {
			return
		}
		if b.Len() > 0 {
			b.WriteByte(';')
		}
		b.WriteString(k + "=" + v)
	}
	add(keyHostName, c.HostName)
	add(keyDeviceID, c.DeviceID)
	add(keyModuleID, c.ModuleID)
	add(keySharedAccessKeyName, c.SharedAccessKeyName)
	add(keySharedAccessKey, c.SharedAccessKey)
	add(keySharedAccessSignature, c.SharedAccessSignature)
	if c.X509 {
		add(keyX509, "true")
	}
	add(keyGatewayHostName, c.GatewayHostName)
	return b.String()
}

// ClientID is the MQTT client id of the identity: "device" or "device/module".
func (c ConnectionString) ClientID() string { return ClientID(c.DeviceID, c.ModuleID) }

// Resource is the SAS resource of the identity (§2.1): the device or module
// resource for a device string, the bare HostName for a service string.
func (c ConnectionString) Resource() string {
	if c.DeviceID == "" {
		return c.HostName
	}
	return IdentityResource(c.HostName, c.DeviceID, c.ModuleID)
}

// DialHost is the host[:port] to open the connection to: GatewayHostName when
// set (IoT Edge, local hub), else HostName.
func (c ConnectionString) DialHost() string {
	if c.GatewayHostName != "" {
		return c.GatewayHostName
	}
	return c.HostName
}
