package iothub

import (
	"crypto/rand"
	"encoding/hex"
)

// NewRequestID returns a random RFC 4122 version-4 UUID in its canonical
// lowercase form (8-4-4-4-12 hex digits), for the Request-Id header a
// service client sends and the x-ms-request-id header the hub answers
// with (§5.1, §5.3). It draws from crypto/rand and cannot fail.
//
// It is not the MQTT $rid of a method request: that is chosen by the hub
// and need not be a UUID (§4.2).
func NewRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])  // crypto/rand.Read never fails (Go ≥ 1.24)
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // variant 10xx (RFC 4122)
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}
