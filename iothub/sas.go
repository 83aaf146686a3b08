package iothub

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

const sasPrefix = "SharedAccessSignature "

// Sentinel errors of SAS parsing and verification; callers branch on them
// with errors.Is.
var (
	ErrSASMalformed = errors.New("malformed shared access signature")
	ErrSASSignature = errors.New("shared access signature does not match")
	ErrSASExpired   = errors.New("shared access signature expired")
	ErrSASAudience  = errors.New("shared access signature is not valid for this resource")
)

// SAS is a parsed SharedAccessSignature token. Fields hold the values exactly
// as they were written in the token: the signature is verified over SR as
// sent (§2.2), whatever encoding the client chose.
type SAS struct {
	SR     string // resource, as written (encoded or not)
	Sig    string // URL-encoded base64 signature, as written
	SE     string // expiry, decimal seconds since the Unix epoch, as written
	SKN    string // policy name; empty for device/module keys
	Expiry time.Time
}

// ParseSAS parses "SharedAccessSignature sr=..&sig=..&se=..[&skn=..]" with
// fields in any order. sr, sig and se are required; se must be an integer.
func ParseSAS(token string) (SAS, error) {
	var t SAS
	rest, ok := strings.CutPrefix(token, sasPrefix)
	if !ok {
		return t, fmt.Errorf("%w: want prefix %q", ErrSASMalformed, strings.TrimSpace(sasPrefix))
	}
	for field := range strings.SplitSeq(rest, "&") {
		k, v, _ := strings.Cut(field, "=")
		switch k {
		case "sr":
			t.SR = v
		case "sig":
			t.Sig = v
		case "se":
			t.SE = v
		case "skn":
			t.SKN = v
		}
	}
	if t.SR == "" || t.Sig == "" || t.SE == "" {
		return t, fmt.Errorf("%w: sr, sig and se are required", ErrSASMalformed)
	}
	se, err := strconv.ParseInt(t.SE, 10, 64)
	if err != nil || se < 0 {
		return t, fmt.Errorf("%w: se is not a decimal number of seconds", ErrSASMalformed)
	}
	t.Expiry = time.Unix(se, 0).UTC()
	return t, nil
}

// Resource returns the token's resource URI with percent-escapes decoded
// ('+' stays '+': device IDs may contain it).
func (t SAS) Resource() (string, error) {
	r, err := url.PathUnescape(t.SR)
	if err != nil {
		return "", fmt.Errorf("%w: sr is not validly escaped", ErrSASMalformed)
	}
	return r, nil
}

// Verify checks the signature with the base64 key and the expiry against
// now. The HMAC is computed over SR and SE exactly as written (§2.1), so the
// token forms of every SDK verify (encoded, unencoded, lowercase escapes).
func (t SAS) Verify(base64Key string, now time.Time) error {
	key, err := base64.StdEncoding.DecodeString(base64Key)
	if err != nil {
		return fmt.Errorf("verify: key is not valid base64")
	}
	raw, err := url.PathUnescape(t.Sig)
	if err != nil {
		return fmt.Errorf("%w: sig is not validly escaped", ErrSASMalformed)
	}
	got, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		return fmt.Errorf("%w: sig is not base64", ErrSASMalformed)
	}
	if !hmac.Equal(got, mac(key, t.SR+"\n"+t.SE)) {
		return ErrSASSignature
	}
	if !now.Before(t.Expiry) {
		return ErrSASExpired
	}
	return nil
}

// Sign mints a token for resource (unencoded, e.g. "hub/devices/d") valid
// until expiry, with the base64 key; keyName is the policy name for service
// tokens and empty for device/module keys. sr = url.QueryEscape(resource),
// sig = url.QueryEscape(base64(HMAC-SHA256(key, sr+"\n"+se))), emitted in the
// order sr, sig, se, skn (§2.2's recommendation; byte-identical to the
// Node/Python/C# SDKs for ordinary IDs).
func Sign(resource, base64Key, keyName string, expiry time.Time) (string, error) {
	key, err := base64.StdEncoding.DecodeString(base64Key)
	if err != nil {
		return "", fmt.Errorf("sign: key is not valid base64")
	}
	sr := url.QueryEscape(resource)
	se := strconv.FormatInt(expiry.Unix(), 10)
	sig := url.QueryEscape(base64.StdEncoding.EncodeToString(mac(key, sr+"\n"+se)))
	tok := sasPrefix + "sr=" + sr + "&sig=" + sig + "&se=" + se
	if keyName != "" {
		tok += "&skn=" + url.QueryEscape(keyName)
	}
	return tok, nil
}

func mac(key []byte, s string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(s))
	return h.Sum(nil)
}

// IdentityResource is the SAS resource of a device ({host}/devices/{d}) or,
// with a module, of a module ({host}/devices/{d}/modules/{m}) (§2.1).
func IdentityResource(host, device, module string) string {
	r := host + "/devices/" + device
	if module != "" {
		r += "/modules/" + module
	}
	return r
}

// ResourceCovers reports whether a token granted for resource granted may
// act on target. Scope is matched per path segment ("/a/b" covers "/a/b/c",
// not "/a/bc"); the host segment compares case-insensitively, the rest
// exactly (device IDs are case-sensitive).
func ResourceCovers(granted, target string) bool {
	g := strings.Split(strings.TrimSuffix(granted, "/"), "/")
	t := strings.Split(target, "/")
	if len(g) > len(t) || len(g) == 0 || !strings.EqualFold(g[0], t[0]) {
		return false
	}
	for i := 1; i < len(g); i++ {
		if g[i] != t[i] {
			return false
		}
	}
	return true
}
