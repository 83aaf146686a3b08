package twindoc

import (
	"strconv"
	"time"
)

// Identity defaults: what real hubs render for fields never set (§2.2).
const (
	defaultStatus             = "enabled"
	defaultConnectionState    = "Disconnected"
	defaultAuthenticationType = "sas"
)

// or returns s, or def when s is empty.
func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// appendField appends `,"name":` (no comma when b ends an opening brace).
func appendField(b []byte, name string) []byte {
	if len(b) > 0 && b[len(b)-1] != '{' {
		b = append(b, ',')
	}
	b = appendString(b, name)
	return append(b, ':')
}

func appendStringField(b []byte, name, s string) []byte {
	return appendString(appendField(b, name), s)
}

func appendTimeField(b []byte, name string, t time.Time) []byte {
	return appendString(appendField(b, name), formatTime(t))
}

func appendIntField(b []byte, name string, n int64) []byte {
	return strconv.AppendInt(appendField(b, name), n, 10)
}

// document renders the service-side twin document (§2.2) in the field
// order of a real hub.
func (t *Twin) document(id Identity) []byte {
	b := append(make([]byte, 0, 512), '{')
	b = appendStringField(b, "deviceId", id.DeviceID)
	if id.ModuleID != "" {
		b = appendStringField(b, "moduleId", id.ModuleID)
	}
	b = appendStringField(b, "etag", t.ETag())
	b = appendStringField(b, "deviceEtag", id.DeviceEtag)
	b = appendStringField(b, "status", or(id.Status, defaultStatus))
	b = appendTimeField(b, "statusUpdateTime", id.StatusUpdateTime)
	b = appendStringField(b, "connectionState", or(id.ConnectionState, defaultConnectionState))
	b = appendTimeField(b, "lastActivityTime", id.LastActivityTime)
	b = appendIntField(b, "cloudToDeviceMessageCount", int64(id.CloudToDeviceMessageCount))
	b = appendStringField(b, "authenticationType", or(id.AuthenticationType, defaultAuthenticationType))
	b = append(appendField(b, "x509Thumbprint"), `{"primaryThumbprint":null,"secondaryThumbprint":null}`...)
	b = appendStringField(b, "modelId", "")
	b = appendIntField(b, "version", t.Version())
	if t.tagWrites > 0 {
		b = appendNode(appendField(b, "tags"), t.tags)
	}
	b = append(appendField(b, "properties"), '{')
	b = appendSection(appendField(b, "desired"), t.desired, t.desiredVersion, true)
	b = appendSection(appendField(b, "reported"), t.reported, t.reportedVersion, false)
	b = append(b, '}')
	if id.ModuleID == "" {
		b = append(appendField(b, "capabilities"), `{"iotEdge":false}`...)
	}
	return append(b, '}')
}

// appendSection appends a properties section as the service shows it: the
// members, "$metadata" and "$version".
func appendSection(b []byte, n *node, version int64, desired bool) []byte {
	b = append(b, '{')
	b = appendMembers(b, n)
	b = appendMetadata(appendField(b, "$metadata"), n, desired)
	b = appendIntField(b, "$version", version)
	return append(b, '}')
}

// appendMetadata appends the $metadata object of n: its $lastUpdated (and
// $lastUpdatedVersion on the desired side), then one such object per
// member, nested like the members themselves.
func appendMetadata(b []byte, n *node, desired bool) []byte {
	b = append(b, '{')
	b = appendStringField(b, "$lastUpdated", formatTime(n.meta.at))
	if desired {
		b = appendIntField(b, "$lastUpdatedVersion", n.meta.version)
	}
	for _, k := range sortedKeys(n) {
		b = appendMetadata(appendField(b, k), n.members[k], desired)
	}
	return append(b, '}')
}
