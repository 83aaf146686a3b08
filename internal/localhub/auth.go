package localhub

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/methodd/methodd/iothub"
)

// authenticate checks a CONNECT packet (§3.2) that arrived on conn: the
// username, the client id, the credentials and the will topic. A SAS
// identity needs a SAS password (checkPassword); an X.509 identity needs a
// client certificate on conn (checkCertificate) and its password, if any,
// is ignored. The error wraps ErrUsername, ErrClientID, ErrUnknownIdentity,
// ErrIdentityDisabled, ErrNoPassword, ErrPolicy, ErrCertificate,
// ErrWillTopic or one of iothub's ErrSAS* errors; it never contains the
// token.
func (h *Hub) authenticate(pk packets.Packet, conn net.Conn) error {
	clientID, err := h.checkUsername(pk)
	if err != nil {
		return err
	}
	id, ok, enabled := h.reg.credentials(clientID)
	switch {
	case !ok:
		return fmt.Errorf("%w: %q", ErrUnknownIdentity, clientID)
	case !enabled:
		return fmt.Errorf("%w: %q", ErrIdentityDisabled, clientID)
	case id.authType() == authSAS:
		err = h.checkPassword(pk, clientID, id)
	default:
		err = h.checkCertificate(conn, clientID, id)
	}
	if err != nil {
		return err
	}
	if pk.Connect.WillFlag && !isTelemetryTopic(clientID, pk.Connect.WillTopic) {
		return fmt.Errorf("%w: %q", ErrWillTopic, pk.Connect.WillTopic)
	}
	return nil
}

// checkUsername checks that the username names this hub and the CONNECT's
// client id, and returns that client id.
func (h *Hub) checkUsername(pk packets.Packet) (string, error) {
	u, err := iothub.ParseUsername(string(pk.Connect.Username))
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrUsername, err)
	}
	if !h.isHubHost(u.Host) {
		return "", fmt.Errorf("%w: host %q is not this hub (%s)", ErrUsername, u.Host, HostName)
	}
	if u.ClientID != pk.Connect.ClientIdentifier {
		return "", fmt.Errorf("%w: client id %q, username's %q", ErrClientID, pk.Connect.ClientIdentifier, u.ClientID)
	}
	device, module := iothub.SplitClientID(u.ClientID)
	if checkIDs(device, module, strings.Contains(u.ClientID, "/")) != nil {
		return "", fmt.Errorf("%w: client id %q: %s", ErrClientID, u.ClientID, idRule)
	}
	return u.ClientID, nil
}

// checkPassword verifies the SAS token of registered SAS identity
// clientID (id): signed with either of the identity's keys (or, with
// skn=iothubowner, that policy's key), not expired, its audience covering
// the identity. A client certificate does not replace the token.
func (h *Hub) checkPassword(pk packets.Packet, clientID string, id identity) error {
	if !pk.Connect.PasswordFlag {
		return ErrNoPassword
	}
	tok, err := iothub.ParseSAS(string(pk.Connect.Password))
	if err != nil {
		return fmt.Errorf("password: %w", err)
	}
	keys := []string{id.PrimaryKey, id.SecondaryKey}
	if tok.SKN != "" { // a device signing with a hub policy key (§1.1)
		key, ok := h.reg.policyKey(tok.SKN)
		if !ok || tok.SKN != policyOwner {
			return fmt.Errorf("%w: %q", ErrPolicy, tok.SKN)
		}
		keys = []string{key}
	}
	if err := verifyAny(tok, keys, h.opts.Now()); err != nil {
		return err
	}
	device, module := iothub.SplitClientID(clientID)
	return h.checkAudience(tok, iothub.IdentityResource(HostName, device, module))
}

// verifyAny verifies tok with each key in turn until one signed it; the
// error is the last key's (iothub.ErrSASSignature when none did).
func verifyAny(tok iothub.SAS, keys []string, now time.Time) error {
	var err error
	for _, k := range keys {
		if err = tok.Verify(k, now); !errors.Is(err, iothub.ErrSASSignature) {
			return err
		}
	}
	return err
}

// isHubHost reports whether host names this hub, with or without a port.
func (h *Hub) isHubHost(host string) bool {
	if strings.EqualFold(host, HostName) {
		return true
	}
	name, _, err := net.SplitHostPort(host)
	return err == nil && strings.EqualFold(name, HostName)
}

// checkAudience verifies that the token's resource covers target; the host
// segment of the resource may carry a port (clients sign the HostName they
// were given, and the service string's HostName has one). The error wraps
// iothub.ErrSASAudience or ErrSASMalformed.
func (h *Hub) checkAudience(tok iothub.SAS, target string) error {
	res, err := tok.Resource()
	if err != nil {
		return err
	}
	host, rest, _ := strings.Cut(res, "/")
	if !h.isHubHost(host) {
		return fmt.Errorf("%w: resource host %q", iothub.ErrSASAudience, host)
	}
	granted := HostName
	if rest != "" {
		granted += "/" + rest
	}
	if !iothub.ResourceCovers(granted, target) {
		return fmt.Errorf("%w: %q does not cover %q", iothub.ErrSASAudience, res, target)
	}
	return nil
}
