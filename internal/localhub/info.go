package localhub

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Info is exactly the content of DIR/hub.json (design §1): where the hub
// listens and the credentials to reach it. Tools and tests read it instead of
// guessing ports. It holds secrets (keys in connection strings).
//
// Start writes hub.json before it returns, and Hub.AddDevice before it
// returns. A registry change over the REST API (a device or module created
// or deleted) is written by a background writer that rewrites the file at
// most about twice a second, so that registering thousands of devices does
// not rewrite it thousands of times: hub.json lags a REST registry change by
// at most ~0.5 s (Hub.Info does not lag). Close writes the last state.
type Info struct {
	HostName                string            `json:"hostName"`
	MQTTAddr                string            `json:"mqttAddr"`
	HTTPSAddr               string            `json:"httpsAddr"`
	WSAddr                  string            `json:"wsAddr,omitempty"`
	CAFile                  string            `json:"caFile"`
	ServiceConnectionString string            `json:"serviceConnectionString"`
	Devices                 map[string]string `json:"devices"` // "dev" or "dev/mod" → device connection string
	// X509 lists the devices registered with Options.X509Devices: their
	// certificate and key files (x509.go).
	X509 map[string]X509Files `json:"x509,omitempty"`
	// DPS describes the provisioning endpoint (Options.DPSAddr); nil
	// without one (dps.go).
	DPS *DPSInfo `json:"dps,omitempty"`
	// PID and StartedAt name the hub process that wrote the file (its
	// start, RFC 3339). hub.json stays after the hub stops, so they do
	// not say it still runs: Running (DIR's lock) does.
	PID       int       `json:"pid,omitempty"`
	StartedAt time.Time `json:"startedAt,omitzero"`
}

// X509Files are the PEM files of a device certificate and its key.
type X509Files struct {
	CertFile string `json:"certFile"`
	KeyFile  string `json:"keyFile"`
}

// DPSInfo is hub.json's "dps" member: where the provisioning endpoint
// listens, its id scope, and the base64 keys of its enrollment groups
// (by name) and individual enrollments (by registration id).
type DPSInfo struct {
	Addr        string            `json:"addr"`
	WSAddr      string            `json:"wsAddr,omitempty"` // MQTT over WSS (Options.DPSWSAddr), "" without
	IDScope     string            `json:"idScope"`
	Groups      map[string]string `json:"groups"`
	Enrollments map[string]string `json:"enrollments"`
	X509Groups  []string          `json:"x509Groups,omitempty"` // X.509 CA enrollment groups, by name
}

// ReadInfo reads DIR/hub.json as written by a running (or previously run)
// hub. A missing file is reported with an error wrapping fs.ErrNotExist.
func ReadInfo(dir string) (Info, error) {
	var info Info
	path := filepath.Join(dir, infoFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return info, fmt.Errorf("read hub info: %w", err)
	}
	if err := json.Unmarshal(b, &info); err != nil {
		return info, fmt.Errorf("read hub info %s: %w", path, err)
	}
	return info, nil
}

// DefaultDir is the default state directory: $XDG_STATE_HOME/methodd/hub,
// else $HOME/.local/state/methodd/hub. It fails when neither variable is set.
func DefaultDir(getenv func(string) string) (string, error) {
	if d := getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "methodd", "hub"), nil
	}
	if h := getenv("HOME"); h != "" {
		return filepath.Join(h, ".local", "state", "methodd", "hub"), nil
	}
	return "", errors.New("hub state dir: neither XDG_STATE_HOME nor HOME is set")
}
