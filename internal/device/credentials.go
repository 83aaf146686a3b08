package device

import (
	"time"

	"github.com/methodd/methodd/iothub"
)

// credentials are what one CONNECT authenticates with.
type credentials struct {
	password string
	// renewAt is when to reconnect with a fresh token; zero when the
	// password cannot be renewed (fixed SAS, X.509).
	renewAt time.Time
	// expiry is when the password stops being valid; zero for X.509.
	expiry time.Time
}

// mint returns the credentials for a connection made now: a fresh SAS from
// the identity's key (valid for SASTTL, to the whole second; renewed at 80 %
// of that), the fixed SharedAccessSignature as given, or no password for
// X.509.
func (c *Config) mint() (credentials, error) {
	id := c.Identity
	now := c.Now()
	switch {
	case id.X509:
		return credentials{}, nil
	case id.SharedAccessSignature != "":
		t, err := iothub.ParseSAS(id.SharedAccessSignature)
		if err != nil {
			return credentials{}, err
		}
		return credentials{password: id.SharedAccessSignature, expiry: t.Expiry}, nil
	}
	// The token's se is whole seconds: it expires up to a second before
	// now+SASTTL, and the renewal is timed on the lifetime it really has.
	expiry := now.Add(c.SASTTL).Truncate(time.Second)
	tok, err := iothub.Sign(id.Resource(), id.SharedAccessKey, "", expiry)
	if err != nil {
		return credentials{}, err
	}
	renew := time.Duration(float64(expiry.Sub(now)) * renewFraction)
	return credentials{password: tok, expiry: expiry, renewAt: now.Add(renew)}, nil
}

// fixedTokenWarning returns when to warn that a fixed token is about to
// expire: at 80 % of its remaining lifetime, at most a day before expiry.
// It returns the zero time when there is nothing to warn about.
func fixedTokenWarning(cr credentials, now time.Time) time.Time {
	if cr.expiry.IsZero() || !cr.renewAt.IsZero() {
		return time.Time{}
	}
	left := cr.expiry.Sub(now)
	if left <= 0 {
		return now
	}
	lead := min(time.Duration(float64(left)*(1-renewFraction)), 24*time.Hour)
	return cr.expiry.Add(-lead)
}
