package cli

import (
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"time"

	"github.com/methodd/methodd/internal/localhub"
	"github.com/methodd/methodd/invoke"
	"github.com/methodd/methodd/iothub"
)

// serviceFlags are the flags that choose the hub (its service API) a
// cloud-side command talks to, and how it is trusted.
type serviceFlags struct {
	connectionString string
	local            bool
	hubDir           string
	caFile           string
}

// add registers the flags on fs.
func (h *serviceFlags) add(fs *flag.FlagSet) {
	fs.StringVar(&h.connectionString, "connection-string", "", "hub (service) connection string; default $IOTHUB_CONNECTION_STRING or $IOTHUB_SERVICE_CONNECTION_STRING")
	fs.BoolVar(&h.local, "local", false, "call the local hub described by hub.json in --hub-dir")
	fs.StringVar(&h.hubDir, "hub-dir", "", "local hub state directory (default $XDG_STATE_HOME/methodd/hub, else ~/.local/state/methodd/hub)")
	fs.StringVar(&h.caFile, "ca-file", "", "PEM file of extra trusted root certificates")
}

// check refuses contradictory hub flags (before any I/O); errors name cmd.
func (h serviceFlags) check(cmd string) error {
	if h.local && h.connectionString != "" {
		return usageError("%s: --local and --connection-string exclude each other", cmd)
	}
	return nil
}

// hubChoice is the hub a command talks to and where that choice came from.
type hubChoice struct {
	cs     iothub.ConnectionString
	source string // "--connection-string", "$IOTHUB_CONNECTION_STRING", "hub.json", ...
	caFile string // the local hub's CA
	addr   string // the local hub's HTTPS listener
}

// resolveHub picks the hub (design §1): --local reads hub.json; otherwise
// --connection-string, else $IOTHUB_CONNECTION_STRING, else
// $IOTHUB_SERVICE_CONNECTION_STRING. A missing or malformed string is a usage
// error that never quotes the string; errors name cmd.
func resolveHub(cmd string, f serviceFlags, getenv func(string) string) (hubChoice, error) {
	if f.local {
		return localHub(cmd, f.hubDir, getenv)
	}
	var h hubChoice
	s := f.connectionString
	h.source = "--connection-string"
	for _, env := range []string{"IOTHUB_CONNECTION_STRING", "IOTHUB_SERVICE_CONNECTION_STRING"} {
		if s == "" {
			s, h.source = getenv(env), "$"+env
		}
	}
	if s == "" {
		return h, usageError("%s: no hub: give --connection-string, set IOTHUB_CONNECTION_STRING, or use --local", cmd)
	}
	cs, err := iothub.ParseServiceConnectionString(s)
	if err != nil {
		return h, usageError("%s: connection string (%s): %v", cmd, h.source, err)
	}
	h.cs = cs
	return h, nil
}

// localHub reads the local hub's hub.json. No hub there is exit 5: the hub,
// not the command line, is missing.
func localHub(cmd, dir string, getenv func(string) string) (hubChoice, error) {
	h := hubChoice{source: "hub.json"}
	if dir == "" {
		d, err := localhub.DefaultDir(getenv)
		if err != nil {
			return h, usageError("%s: --local: %v; give --hub-dir", cmd, err)
		}
		dir = d
	}
	info, err := localhub.ReadInfo(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return h, withExit(exitHubError, fmt.Errorf("%s: no local hub in %s (start one with `methodd hub` or `methodd run --local`)", cmd, dir))
	}
	if err != nil {
		return h, withExit(exitHubError, fmt.Errorf("%s: --local: %w", cmd, err))
	}
	// hub.json outlives its hub: the state dir's lock says whether it
	// runs (a dir without a lock file predates the lock: try it).
	if running, last, err := localhub.Running(dir); err == nil && !running && last.PID != 0 {
		return h, withExit(exitHubError, fmt.Errorf("%s: the local hub in %s is not running (last started by pid %d at %s); start it with `methodd hub --dir %s`",
			cmd, dir, last.PID, last.StartedAt.Format(time.RFC3339), dir))
	}
	cs, err := iothub.ParseServiceConnectionString(info.ServiceConnectionString)
	if err != nil {
		return h, withExit(exitHubError, fmt.Errorf("%s: --local: service connection string in %s: %w", cmd, dir, err))
	}
	h.cs, h.caFile, h.addr = cs, info.CAFile, info.HTTPSAddr
	return h, nil
}

// trustedRoots is the system roots plus the local hub's CA and --ca-file.
// An unreadable hub CA is a hub error (exit 5), a bad --ca-file a usage
// error.
func trustedRoots(cmd string, h hubChoice, caFile string) (*x509.CertPool, error) {
	roots, err := systemRootsPlus(h.caFile)
	if err != nil {
		return nil, withExit(exitHubError, err)
	}
	if caFile != "" {
		if err := addRoots(roots, caFile); err != nil {
			return nil, usageError("%s: --ca-file: %v", cmd, err)
		}
	}
	return roots, nil
}

// serviceClient builds the REST client for the hub that the hub flags and
// the environment name; a connection string that does not parse is a
// usage error.
func serviceClient(cmd string, f serviceFlags, getenv func(string) string) (*invoke.Client, error) {
	hub, err := resolveHub(cmd, f, getenv)
	if err != nil {
		return nil, err
	}
	roots, err := trustedRoots(cmd, hub, f.caFile)
	if err != nil {
		return nil, err
	}
	cl, err := invoke.NewClient(hub.cs, invoke.ClientOptions{RootCAs: roots, Addr: hub.addr, UserAgent: productToken()})
	if err != nil {
		return nil, usageError("%s: connection string (%s): %v", cmd, hub.source, err)
	}
	return cl, nil
}
