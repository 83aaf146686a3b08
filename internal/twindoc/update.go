package twindoc

// Section names as error messages give them.
const (
	sectionTags     = "tags"
	sectionDesired  = "properties.desired"
	sectionReported = "properties.reported"
)

// request is a validated service-side twin write (§2.3).
type request struct {
	tags    *value // nil when the body has no "tags"
	desired *value // nil when the body has no "properties.desired"
}

// parseRequest parses and validates the body of a twin PATCH or PUT. For a
// PUT (replace) null members are removed: they mean "absent".
func parseRequest(body []byte, replace bool) (request, error) {
	v, err := parseJSON(body)
	if err != nil {
		return request{}, invalid("twin body is not valid JSON: %s", clip(err.Error(), 2*maxEcho))
	}
	if v.kind != kindObject {
		return request{}, invalid("twin body is not a JSON object")
	}
	var r request
	if tags := v.member("tags"); tags != nil {
		if r.tags, err = sectionPatch(tags, sectionTags); err != nil {
			return request{}, err
		}
	}
	if props := v.member("properties"); props != nil {
		if r.desired, err = desiredPatch(props); err != nil {
			return request{}, err
		}
	}
	if replace {
		r.tags, r.desired = pruned(r.tags), pruned(r.desired)
	}
	return r, nil
}

// desiredPatch returns the validated "desired" member of the "properties"
// of a service write, or nil. "reported" is ignored (reported properties
// are read-only for the back end); any other member is an error.
func desiredPatch(props *value) (*value, error) {
	if props.kind != kindObject {
		return nil, invalid("properties: not a JSON object")
	}
	for _, k := range props.keys {
		if k != "desired" && k != "reported" {
			return nil, invalid("properties.%s: unknown member, want desired or reported", segment(k))
		}
	}
	d := props.member("desired")
	if d == nil {
		return nil, nil
	}
	return sectionPatch(d, sectionDesired)
}

// sectionPatch returns v, which must be an object, without the "$metadata"
// and "$version" members at its top (a twin read from the service carries
// them and may be written back, §2.3), validated against §1.7.
func sectionPatch(v *value, section string) (*value, error) {
	if v.kind != kindObject {
		return nil, invalid("%s: not a JSON object", section)
	}
	v = without(v, "$metadata", "$version")
	if err := checkSection(v, section); err != nil {
		return nil, err
	}
	return v, nil
}

// reportedPatch parses and validates a device's reported-properties patch.
func reportedPatch(patch []byte) (*value, error) {
	v, err := parseJSON(patch)
	if err != nil {
		return nil, invalid("%s: patch is not valid JSON: %s", sectionReported, clip(err.Error(), 2*maxEcho))
	}
	if v.kind != kindObject {
		return nil, invalid("%s: patch is not a JSON object", sectionReported)
	}
	if err := checkSection(v, sectionReported); err != nil {
		return nil, err
	}
	return v, nil
}

// pruned is withoutNulls for an optional section.
func pruned(v *value) *value {
	if v == nil {
		return nil
	}
	return withoutNulls(v)
}
