package twinquery

import (
	"fmt"
	"strings"
)

// parsePathOrCall parses an attribute path, or a function call when the
// identifier is followed by '('. Only IS_DEFINED(path) is supported.
func (p *parser) parsePathOrCall() (expr, error) {
	name := p.tok
	if err := p.advance(); err != nil {
		return nil, err
	}
	if isPunct(p.tok, "(") {
		return p.parseCall(name)
	}
	return p.parsePathRest(name)
}

// parseCall parses the arguments of the function name; tok is '('.
func (p *parser) parseCall(name token) (expr, error) {
	if isAggregate(name.text) {
		return nil, unsupported(name.pos, fmt.Sprintf("aggregate %s()", strings.ToUpper(name.text)))
	}
	if !strings.EqualFold(name.text, "IS_DEFINED") {
		return nil, unsupported(name.pos, fmt.Sprintf("function %s() (only IS_DEFINED(path) is)", name.text))
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	if p.tok.kind != tokIdent || isReserved(p.tok.text) {
		return nil, p.expected("a property path in IS_DEFINED()")
	}
	first := p.tok
	if err := p.advance(); err != nil {
		return nil, err
	}
	path, err := p.parsePathRest(first)
	if err != nil {
		return nil, err
	}
	if !isPunct(p.tok, ")") {
		return nil, p.expected("')'")
	}
	return definedExpr{path}, p.advance()
}

// isAggregate reports whether name is an aggregate function of the full
// language.
func isAggregate(name string) bool {
	switch strings.ToUpper(name) {
	case "COUNT", "AVG", "SUM", "MIN", "MAX":
		return true
	}
	return false
}

// parsePathRest parses {'.' identifier} after the path's first segment
// (already consumed) and resolves the path for the parser's source.
func (p *parser) parsePathRest(first token) (pathExpr, error) {
	segs := []string{first.text}
	for isPunct(p.tok, ".") {
		if err := p.advance(); err != nil {
			return pathExpr{}, err
		}
		if p.tok.kind != tokIdent {
			return pathExpr{}, p.expected("a property name after '.'")
		}
		segs = append(segs, p.tok.text)
		if err := p.advance(); err != nil {
			return pathExpr{}, err
		}
	}
	return resolvePath(p.src, first.pos, segs)
}

// resolvePath makes segs relative to the documents src yields: a
// devices.jobs query's paths must start with devices.jobs. (stripped, the
// rest read in the per-device job record); devices.modules. is stripped
// when present. The first remaining segment is matched case-insensitively
// against the document's system properties.
func resolvePath(src Source, pos int, segs []string) (pathExpr, error) {
	switch {
	case src == Jobs:
		if len(segs) < 3 || !hasPrefixFold(segs, "devices", "jobs") {
			return pathExpr{}, errorf(pos, "a devices.jobs query filters on devices.jobs.<field>; other conditions are not supported by this hub")
		}
		segs = segs[2:]
	case src == Modules && len(segs) >= 3 && hasPrefixFold(segs, "devices", "modules"):
		segs = segs[2:]
	}
	out := append([]string(nil), segs...)
	out[0] = canonicalRoot(src, out[0])
	return pathExpr{segs: out}, nil
}

// hasPrefixFold reports whether segs starts with prefix, ignoring case.
func hasPrefixFold(segs []string, prefix ...string) bool {
	for i, p := range prefix {
		if !strings.EqualFold(segs[i], p) {
			return false
		}
	}
	return true
}

// canonicalRoot returns the document's spelling of a top-level name that
// matches name case-insensitively (`DeviceId` → deviceId), or name itself.
func canonicalRoot(src Source, name string) string {
	names := twinRoots
	if src == Jobs {
		names = jobRecordRoots
	}
	for n := range strings.FieldsSeq(names) {
		if strings.EqualFold(n, name) {
			return n
		}
	}
	return name
}

// The top-level names of a twin (§2.2) and of a per-device job record
// (§4.5), space-separated.
const (
	twinRoots = "deviceId moduleId etag deviceEtag status statusReason statusUpdateTime " +
		"connectionState lastActivityTime cloudToDeviceMessageCount authenticationType " +
		"x509Thumbprint modelId version tags properties capabilities deviceScope parentScopes"
	jobRecordRoots = "deviceId moduleId jobId jobType status startTimeUtc endTimeUtc " +
		"createdTimeUtc createdDateTimeUtc lastUpdatedDateTimeUtc outcome error"
)
