package device

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"
)

// Repeated failures are logged once per distinct cause, then summarised.
const (
	// failSummaryEvery bounds how often an unchanged failure is summarised.
	failSummaryEvery = 5 * time.Minute
	// quickDrop: a connection the hub closes this soon after connecting
	// counts towards the duplicate-identity pattern.
	quickDrop = 5 * time.Second
	// dupDrops quick drops within dupWindow make the pattern.
	dupDrops  = 3
	dupWindow = 60 * time.Second
	// dupLogEvery bounds how often the pattern is logged while it holds.
	dupLogEvery = 5 * time.Minute
)

// tlsCause names a certificate failure (its class and key detail), or ""
// when err is not one. Two attempts failing with the same cause are the
// same failure for the log.
func tlsCause(err error) string {
	var (
		unknown  x509.UnknownAuthorityError
		invalid  x509.CertificateInvalidError
		hostname x509.HostnameError
		verify   *tls.CertificateVerificationError
	)
	switch {
	case errors.As(err, &unknown):
		return "certificate signed by an unknown authority: " + certName(unknown.Cert)
	case errors.As(err, &hostname):
		return fmt.Sprintf("certificate not valid for host %q: %s", hostname.Host, certName(hostname.Certificate))
	case errors.As(err, &invalid):
		return fmt.Sprintf("certificate invalid (reason %d): %s", invalid.Reason, certName(invalid.Cert))
	case errors.As(err, &verify):
		return "certificate verification failed: " + verify.Err.Error()
	}
	return ""
}

func certName(c *x509.Certificate) string {
	if c == nil {
		return "?"
	}
	return c.Subject.String()
}

// failTracker decides which connection failures are logged in full.
type failTracker struct {
	cause    string    // the last TLS cause logged; "" = none
	since    time.Time // when it was first seen
	attempts int       // failures with it since then
	lastLog  time.Time // last full line or summary
}

// observe records a failure at now and reports how to log it: "first" (a
// new cause, or not a TLS failure: log in full), "summary" (the same cause,
// summary due) or "" (the same cause: count only).
func (f *failTracker) observe(err error, now time.Time) string {
	cause := tlsCause(err)
	if cause == "" || cause != f.cause {
		f.cause, f.since, f.attempts, f.lastLog = cause, now, 1, now
		return "first"
	}
	f.attempts++
	if now.Sub(f.lastLog) >= failSummaryEvery {
		f.lastLog = now
		return "summary"
	}
	return ""
}

// reset forgets the cause: the next failure is logged in full.
func (f *failTracker) reset() { *f = failTracker{} }

// dupTracker recognises a hub dropping the connection right after each
// connect: another client connected with the same identity.
type dupTracker struct {
	drops   []time.Time // quick drops within dupWindow
	lastLog time.Time
}

// lost records a connection lost at now that had connected at up; it
// reports whether the pattern holds and whether to log it now.
func (d *dupTracker) lost(up, now time.Time) (holds, log bool) {
	if now.Sub(up) > quickDrop {
		d.drops = d.drops[:0]
		return false, false
	}
	keep := d.drops[:0]
	for _, t := range d.drops {
		if now.Sub(t) <= dupWindow {
			keep = append(keep, t)
		}
	}
	d.drops = append(keep, now)
	if len(d.drops) < dupDrops {
		return false, false
	}
	if d.lastLog.IsZero() || now.Sub(d.lastLog) >= dupLogEvery {
		d.lastLog = now
		return true, true
	}
	return true, false
}
