package provision

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/methodd/methodd/internal/logkey"
)

// cachedAssignment is the cache file's content: an assignment and what it
// was made for. It holds no key.
type cachedAssignment struct {
	AssignedHub    string    `json:"assignedHub"`
	DeviceID       string    `json:"deviceId"`
	IDScope        string    `json:"idScope"`
	RegistrationID string    `json:"registrationId"`
	Endpoint       string    `json:"endpoint"`
	ProvisionedAt  time.Time `json:"provisionedAt"`
}

// readCache returns the cached assignment when there is one for this
// configuration. A missing file is silent; an unreadable or corrupt one,
// or one for another registration, is logged and ignored.
func (p *Provisioner) readCache() (cachedAssignment, bool) {
	var ca cachedAssignment
	path := p.cfg.CachePath
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return ca, false
	}
	if err == nil {
		err = json.Unmarshal(b, &ca)
	}
	if err == nil && (ca.AssignedHub == "" || ca.DeviceID == "") {
		err = errors.New("no assignedHub or deviceId")
	}
	if err != nil {
		p.log.Warn("ignoring the provisioning cache; registering again", logkey.File, path, logkey.Err, err)
		return ca, false
	}
	if ca.IDScope != p.cfg.IDScope || ca.RegistrationID != p.cfg.RegistrationID || ca.Endpoint != p.cfg.Endpoint {
		p.log.Info("the provisioning cache is for another registration; registering again", logkey.File, path,
			logkey.IDScope, ca.IDScope, logkey.RegistrationID, ca.RegistrationID, logkey.DPSAddr, ca.Endpoint)
		return ca, false
	}
	return ca, true
}

// writeCache replaces the cache file atomically (a temporary file in the
// same directory, synced, renamed), mode 0600; a missing directory is
// created 0700.
func writeCache(path string, ca cachedAssignment) error {
	b, err := json.MarshalIndent(ca, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".provisioning-*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // after a successful rename: a no-op
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Chmod(0o600) // CreateTemp's 0600, whatever the umask did
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", f.Name(), err)
	}
	return os.Rename(f.Name(), path)
}
