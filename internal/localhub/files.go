package localhub

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// State-directory file names. Everything in the directory is written with
// mode 0600; the directory itself and its folders are created with mode
// 0700.
const (
	infoFile       = "hub.json"
	registryFile   = "registry.json"
	caCertFile     = "ca.pem"
	caKeyFile      = "ca-key.pem"
	serverCertFile = "server.pem"
	serverKeyFile  = "server-key.pem"
)

// identitiesDir is the state-directory folder of the registry's
// identities: one file per device or module, named by its path-escaped
// client id ("dev.json", "dev%2Fmod.json") and written atomically, so that
// a registry change writes one small file whatever the registry's size.
// registry.json keeps the shared access policies only.
const identitiesDir = "identities"

// writeFileAtomic writes data to path through a temporary file in the same
// directory and a rename, so that readers see either the old or the new
// content, never a partial file. The file mode is 0600.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// writeJSONAtomic renders v as indented JSON and writes it atomically.
func writeJSONAtomic(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return writeFileAtomic(path, append(b, '\n'))
}

// ensureDir creates dir (and parents) with mode 0700 when missing. An
// existing directory is left as it is: it may be shared (never chmod a
// directory we did not create).
func ensureDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	return nil
}
