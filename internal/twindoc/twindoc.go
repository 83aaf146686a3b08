// Package twindoc is the device twin document as IoT Hub keeps it (fleet
// reference §1.7, §2.2, §2.3): tags, desired and reported properties with
// their $metadata and $version, the etag and the twin version, the merge
// and replace rules, and the document limits.
//
// A Twin is not safe for concurrent use; its owner (the local hub) guards
// it. Every operation validates its whole input before it changes
// anything: an error leaves the twin exactly as it was.
package twindoc

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"
)

// Document limits (fleet reference §1.7).
const (
	MaxDepth         = 10   // levels of objects inside tags, desired or reported
	MaxKeyBytes      = 1024 // UTF-8 bytes of one key
	MaxStringBytes   = 4096 // UTF-8 bytes of one string value
	MaxTagsBytes     = 8 * 1024
	MaxDesiredBytes  = 32 * 1024
	MaxReportedBytes = 32 * 1024
	MinInt           = -4503599627370496
	MaxInt           = 4503599627370495
)

// Twin is one device's or module's twin. The zero value is not usable:
// build one with New or UnmarshalJSON.
type Twin struct {
	tags, desired, reported *node // object nodes; never modified, only replaced
	desiredVersion          int64
	reportedVersion         int64
	tagWrites               int64 // tags were written (and are rendered) when > 0
}

// Clone returns an independent copy of t in constant time: a twin's
// nodes are never modified, only replaced, so the copy shares them safely.
// Operations on either never show in the other.
func (t *Twin) Clone() *Twin {
	c := *t
	return &c
}

// New returns the twin of a new identity created at now: no tags, empty
// desired and reported sections, both at $version 1.
func New(now time.Time) *Twin {
	return &Twin{
		tags:            emptyObject(stamp{}),
		desired:         emptyObject(newStamp(now, 1)),
		reported:        emptyObject(newStamp(now, 0)),
		desiredVersion:  1,
		reportedVersion: 1,
	}
}

// PatchReported merges patch (a JSON object; null members delete, objects
// merge, anything else replaces) into the reported properties at now and
// returns the new reported $version (+1 per call, even for an empty
// patch). The error is an *iothub.Error (400004 ArgumentInvalid) naming
// the rule and the property path; the twin is then unchanged.
func (t *Twin) PatchReported(patch []byte, now time.Time) (int64, error) {
	p, err := reportedPatch(patch)
	if err != nil {
		return 0, err
	}
	next := merge(t.reported, p, newStamp(now, 0))
	if err := checkSize(sectionReported, t.reported, next, MaxReportedBytes); err != nil {
		return 0, err
	}
	t.reported = next
	t.reportedVersion++
	return t.reportedVersion, nil
}

// Change is what an Update did to the desired properties.
type Change struct {
	// Desired is the notification a subscribed device gets (§1.4): the
	// desired patch as applied (or, for a replace, the whole new desired
	// object) plus "$version"; nil when the desired properties were not
	// written.
	Desired json.RawMessage
	// DesiredVersion is the desired $version after the update.
	DesiredVersion int64
}

// Update applies a service-side twin write at now (§2.3): body is
// {"tags":{…},"properties":{"desired":{…}}}, either part optional.
// With replace false (PATCH) both parts are JSON-merged; with replace true
// (PUT) they replace tags and desired wholesale. Identity fields (deviceId,
// etag, version, status, …), "properties.reported" and the "$metadata" and
// "$version" members at the top of a section are ignored, so that a twin
// read from the service can be written back. The error is an
// *iothub.Error (400004) naming the rule and path; the twin is then
// unchanged.
//
// Tags present in the body count as one tag write (etag and version move)
// even when nothing changes; desired present moves desired $version by 1.
// On error the Change is the zero Change.
func (t *Twin) Update(body []byte, replace bool, now time.Time) (Change, error) {
	r, err := parseRequest(body, replace)
	if err != nil {
		return Change{}, err
	}
	next := *t
	if r.tags != nil {
		next.tags = write(t.tags, r.tags, replace, newStamp(now, 0))
		next.tagWrites++
		if err := checkSize(sectionTags, t.tags, next.tags, MaxTagsBytes); err != nil {
			return Change{}, err
		}
	}
	change := Change{DesiredVersion: t.desiredVersion}
	if r.desired != nil {
		next.desiredVersion++
		next.desired = write(t.desired, r.desired, replace, newStamp(now, next.desiredVersion))
		if err := checkSize(sectionDesired, t.desired, next.desired, MaxDesiredBytes); err != nil {
			return Change{}, err
		}
		change.DesiredVersion = next.desiredVersion
		change.Desired = appendVersioned(nil, nil, r.desired, next.desiredVersion)
	}
	*t = next
	return change, nil
}

// ETag is the twin's etag, unquoted: base64 of the big-endian uint64
// desired $version + tag writes (§7.3), "AAAAAAAAAAE=" for a new twin.
func (t *Twin) ETag() string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(t.desiredVersion+t.tagWrites))
	return base64.StdEncoding.EncodeToString(b[:])
}

// Version is the twin version: desired $version + reported $version + tag
// writes (§2.2).
func (t *Twin) Version() int64 {
	return t.desiredVersion + t.reportedVersion + t.tagWrites
}

// DeviceJSON is the twin as a device GETs it (§1.2): only desired and
// reported, each with its $version, no metadata, no tags. Properties are
// in byte order of their keys, "$version" last.
func (t *Twin) DeviceJSON() []byte {
	b := append(make([]byte, 0, 64+t.desired.size+t.reported.size), `{"desired":`...)
	b = appendVersioned(b, t.desired, nil, t.desiredVersion)
	b = append(b, `,"reported":`...)
	b = appendVersioned(b, t.reported, nil, t.reportedVersion)
	return append(b, '}')
}

// Identity holds the fields of a service-side twin document that the
// registry owns (§2.2). Empty strings are rendered as the real hub's
// defaults ("enabled", "Disconnected", "0001-01-01T00:00:00Z", "sas").
type Identity struct {
	DeviceID, ModuleID        string // ModuleID "" for a device twin
	DeviceEtag                string
	Status                    string
	StatusUpdateTime          time.Time
	ConnectionState           string
	LastActivityTime          time.Time
	CloudToDeviceMessageCount int
	AuthenticationType        string
}

// Document is the twin as the service API returns it (§2.2): the identity
// fields, etag, version, tags (absent when never written), properties with
// $metadata ($lastUpdated with 7 fractional digits, $lastUpdatedVersion on
// the desired side) and $version, and capabilities for device twins.
// Properties are in byte order of their keys.
func (t *Twin) Document(id Identity) []byte { return t.document(id) }

// MarshalJSON renders the twin's complete state (for the hub's state
// directory); UnmarshalJSON restores it exactly. The state is a versioned
// JSON object (see stateFormat); the error is always nil.
func (t *Twin) MarshalJSON() ([]byte, error) { return t.marshalState(), nil }

// UnmarshalJSON restores a twin written by MarshalJSON. A document that is
// not one is an error; t is then unchanged.
func (t *Twin) UnmarshalJSON(b []byte) error {
	s, err := unmarshalState(b)
	if err != nil {
		return fmt.Errorf("twindoc: twin state: %w", err)
	}
	*t = s
	return nil
}
