package localhub

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/methodd/methodd/iothub"
)

// dpsFile is the state-directory file of the provisioning endpoint: its
// id scope, enrollments and registration records (mode 0600, written
// atomically).
const dpsFile = "dps.json"

// Enrollment kinds of SetEnrollmentEnabled.
const (
	EnrollmentGroup      = "group"
	EnrollmentIndividual = "individual"
	EnrollmentX509Group  = "x509group"
)

// ErrUnknownEnrollment is returned by SetEnrollmentEnabled for an
// enrollment the hub does not have (or a hub without DPS).
var ErrUnknownEnrollment = errors.New("localhub: no such enrollment")

// dpsDoc is the content of dps.json.
type dpsDoc struct {
	IDScope       string                    `json:"idScope"`
	Groups        map[string]*dpsEnrollment `json:"groups"`        // by name
	Enrollments   map[string]*dpsEnrollment `json:"enrollments"`   // by registration id
	X509Groups    map[string]*dpsEnrollment `json:"x509Groups"`    // X.509 CA groups by name (no key)
	Registrations map[string]*dpsRecord     `json:"registrations"` // by registration id
}

// dpsEnrollment is an enrollment: for a symmetric-key one its base64 key
// (a group's devices use keys derived from it), and whether it admits
// registrations.
type dpsEnrollment struct {
	Key     string `json:"key,omitempty"`
	Enabled bool   `json:"enabled"`
}

// dpsRecord is the last registration of one registration id.
type dpsRecord struct {
	OperationID string                      `json:"operationId"`
	Group       string                      `json:"enrollmentGroup,omitempty"` // "" = individual enrollment
	State       iothub.DPSRegistrationState `json:"registrationState"`
}

// loadDPSDoc reads DIR/dps.json (an absent file is an empty document),
// fills in the id scope (scope, else the kept one, else a generated one)
// and creates the requested enrollments that are missing, with fresh
// random keys. It writes the file when anything changed.
func loadDPSDoc(dir, scope string, groups, enrollments, x509Groups []string) (*dpsDoc, error) {
	path := filepath.Join(dir, dpsFile)
	doc := &dpsDoc{}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("localhub: dps state: %w", err)
	default:
		if err := json.Unmarshal(b, doc); err != nil {
			return nil, fmt.Errorf("localhub: dps state %s: %w", path, err)
		}
	}
	changed := doc.fill(scope)
	for _, name := range groups {
		changed = doc.ensure(doc.Groups, name) || changed
	}
	for _, reg := range enrollments {
		if !validRegistrationID(reg) {
			return nil, fmt.Errorf("localhub: enrollment %q: registration ids are [a-z0-9-]{1,128}", reg)
		}
		changed = doc.ensure(doc.Enrollments, reg) || changed
	}
	for _, name := range x509Groups {
		if _, ok := doc.X509Groups[name]; !ok {
			doc.X509Groups[name], changed = &dpsEnrollment{Enabled: true}, true
		}
	}
	if changed || b == nil {
		if err := writeJSONAtomic(path, doc); err != nil {
			return nil, fmt.Errorf("localhub: dps state: %w", err)
		}
	}
	return doc, nil
}

// fill sets the id scope and allocates the maps; it reports a change.
func (d *dpsDoc) fill(scope string) bool {
	changed := false
	switch {
	case scope != "" && scope != d.IDScope:
		d.IDScope, changed = scope, true
	case d.IDScope == "":
		d.IDScope, changed = "0ne"+strings.ToUpper(newHex(4)), true
	}
	if d.Groups == nil {
		d.Groups = map[string]*dpsEnrollment{}
	}
	if d.Enrollments == nil {
		d.Enrollments = map[string]*dpsEnrollment{}
	}
	if d.X509Groups == nil {
		d.X509Groups = map[string]*dpsEnrollment{}
	}
	if d.Registrations == nil {
		d.Registrations = map[string]*dpsRecord{}
	}
	return changed
}

// ensure creates enrollment name in m with a random 32-byte key unless it
// exists; it reports whether it created it.
func (d *dpsDoc) ensure(m map[string]*dpsEnrollment, name string) bool {
	if _, ok := m[name]; ok {
		return false
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key) // crypto/rand.Read never fails (Go ≥ 1.24)
	m[name] = &dpsEnrollment{Key: base64.StdEncoding.EncodeToString(key), Enabled: true}
	return true
}

// keys returns name → key of m.
func keys(m map[string]*dpsEnrollment) map[string]string {
	out := make(map[string]string, len(m))
	for name, e := range m {
		out[name] = e.Key
	}
	return out
}

// validRegistrationID reports whether reg is a registration id the hub
// accepts: [a-z0-9-]{1,128}. The real set and length limit were not found
// in the sources read (fleet reference §5.1 [unverified]); this is the
// set every source agrees is safe.
func validRegistrationID(reg string) bool {
	if len(reg) == 0 || len(reg) > 128 {
		return false
	}
	for _, c := range []byte(reg) {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}
