package localhub

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/methodd/methodd/internal/logkey"
	"github.com/methodd/methodd/iothub"
)

// dpsRetryAfter is the retry-after of the hub's 202 and 429 answers. Real
// DPS says 3 s; 1 s keeps local provisioning quick and is still honoured.
const dpsRetryAfter = time.Second

// DPS error codes. 401002 is what real DPS answers a bad token with
// (§5.2); the others follow the IoT Hub pattern (status × 1000 + n) and
// were not seen in a capture [unverified].
const (
	dpsCodeBadRequest   = 400004
	dpsCodeUnauthorized = 401002
	dpsCodeNotFound     = 404002
	dpsCodeThrottled    = 429001
	dpsCodeServerError  = 500001
)

// DPS substatuses (§5.4). The hub assigns to itself only, so a device is
// never moved between hubs: a first registration, and a re-registration of
// a device the registry still holds (its data kept), are
// initialAssignment; a re-registration of a device deleted from the
// registry meanwhile (created again, its twin empty) is deviceDataReset.
// The exact substatus real DPS reports for these cases is [unverified].
const (
	substatusInitial = "initialAssignment"
	substatusReset   = "deviceDataReset"
)

// dpsReply is one response: its status, retry-after and JSON body.
type dpsReply struct {
	status     int
	retryAfter time.Duration
	body       []byte
}

// handle answers one register or poll request of cl on cl. A request of a
// connection without the response subscription goes unanswered (nothing
// would receive it).
func (s *dpsServer) handle(cl *mqtt.Client, topic string, payload []byte) {
	op, rid, opID, err := iothub.ParseDPSRequestTopic(topic)
	if err != nil { // OnPacketRead let only well-formed topics through
		return
	}
	if _, ok := cl.State.Subscriptions.Get(iothub.DPSResponseSubscription); !ok {
		s.log.Debug("dps request without a response subscription", logkey.RegistrationID, cl.ID, logkey.RequestID, rid)
		return
	}
	s.mu.Lock()
	login, ok := s.conns[cl]
	s.mu.Unlock()
	if !ok || s.h.opts.Faults.DPSSilent {
		return
	}
	var r dpsReply
	switch {
	case s.served.Add(1) <= int64(s.h.opts.Faults.DPSThrottle):
		r = s.fail(http.StatusTooManyRequests, dpsCodeThrottled, "Throttled")
		r.retryAfter = dpsRetryAfter
	case op == iothub.DPSRegister:
		r = s.register(login, payload)
	default:
		r = s.poll(login, opID)
	}
	s.write(cl, iothub.DPSResponseTopic(r.status, rid, r.retryAfter), r.body)
}

// register handles a register request: body check, token check against
// the enrollment, assignment in the hub's registry. Success is a 202
// "assigning" with an operation id that every poll then answers 200
// "assigned".
func (s *dpsServer) register(login dpsLogin, payload []byte) dpsReply {
	reg := login.registrationID
	var req iothub.DPSRegisterRequest
	if err := json.Unmarshal(payload, &req); err != nil {
		return s.refuse(reg, http.StatusBadRequest, dpsCodeBadRequest, "The request body is not a registration request.", err)
	}
	if req.RegistrationID != reg {
		return s.refuse(reg, http.StatusBadRequest, dpsCodeBadRequest, "The registration id of the body is not the connection's.",
			fmt.Errorf("body registration id %q", req.RegistrationID))
	}
	if !validRegistrationID(reg) {
		return s.refuse(reg, http.StatusBadRequest, dpsCodeBadRequest, "Invalid registration id.",
			errors.New("registration ids are [a-z0-9-]{1,128}"))
	}
	m, err := s.authorizeLogin(login)
	if err != nil {
		return s.refuse(reg, http.StatusUnauthorized, dpsCodeUnauthorized, "Unauthorized", err)
	}
	if !m.enabled {
		s.log.Warn("dps registration refused", logkey.RegistrationID, reg, logkey.Enrollment, m.name(reg),
			logkey.Reason, "enrollment disabled")
		return s.disabled(reg)
	}
	rec, err := s.assign(reg, m)
	if err != nil {
		s.log.Error("dps assignment failed", logkey.RegistrationID, reg, logkey.Err, err)
		return s.fail(http.StatusInternalServerError, dpsCodeServerError, "Internal server error.")
	}
	s.log.Info("dps device assigned", logkey.RegistrationID, reg, logkey.Enrollment, m.name(reg),
		logkey.EnrollmentKind, m.kind(), logkey.OperationID, rec.OperationID, logkey.Substatus, rec.State.Substatus,
		logkey.AssignedHub, rec.State.AssignedHub)
	return s.json(http.StatusAccepted, dpsRetryAfter, iothub.DPSOperation{OperationID: rec.OperationID, Status: iothub.DPSStatusAssigning})
}

// poll answers an operation-status request: 200 with the registration as
// it stands, 404 for an operation unknown to the connection's
// registration id, 401 when the token no longer verifies.
func (s *dpsServer) poll(login dpsLogin, opID string) dpsReply {
	reg := login.registrationID
	s.mu.Lock()
	owner, ok := s.ops[opID]
	var rec dpsRecord
	if r := s.doc.Registrations[owner]; ok && r != nil {
		rec = *r
	}
	s.mu.Unlock()
	if !ok || owner != reg {
		return s.refuse(reg, http.StatusNotFound, dpsCodeNotFound, "Operation not found.", fmt.Errorf("unknown operation %q", opID))
	}
	if _, err := s.authorizeLogin(login); err != nil {
		return s.refuse(reg, http.StatusUnauthorized, dpsCodeUnauthorized, "Unauthorized", err)
	}
	st := rec.State
	return s.json(http.StatusOK, 0, iothub.DPSOperation{OperationID: opID, Status: st.Status, RegistrationState: &st})
}

// disabled is the answer to a registration through a disabled enrollment:
// a 200 whose status and registrationState.status are "disabled". What
// real DPS answers was not found [unverified]; this mirrors its "failed"
// answer (§5.4).
func (s *dpsServer) disabled(reg string) dpsReply {
	now := iothub.DPSTime(s.h.opts.Now())
	return s.json(http.StatusOK, 0, iothub.DPSOperation{
		OperationID: newOperationID(),
		Status:      iothub.DPSStatusDisabled,
		RegistrationState: &iothub.DPSRegistrationState{
			RegistrationID:         reg,
			CreatedDateTimeUTC:     now,
			Status:                 iothub.DPSStatusDisabled,
			LastUpdatedDateTimeUTC: now,
			ETag:                   newDPSETag(),
		},
	})
}

// dpsMatch is the enrollment a token or certificate verified against.
type dpsMatch struct {
	key     string // the device key; "" for X.509
	group   string // the group's name; "" for an individual enrollment
	x509    bool   // an X.509 CA group: the device is a certificateAuthority identity
	enabled bool
}

func (m dpsMatch) name(reg string) string {
	if m.group != "" {
		return m.group
	}
	return reg
}

func (m dpsMatch) kind() string {
	if m.x509 {
		return EnrollmentX509Group
	}
	if m.group != "" {
		return EnrollmentGroup
	}
	return EnrollmentIndividual
}

// authorizeLogin authorizes a connection's registration: by its client
// certificate when it logged in with one and no password (X.509
// attestation, §5.6), else by its SAS token.
func (s *dpsServer) authorizeLogin(login dpsLogin) (dpsMatch, error) {
	if login.password == "" && len(login.chain) > 0 {
		return s.authorizeX509(login.registrationID, login.chain)
	}
	return s.authorize(login.registrationID, login.password)
}

// authorizeX509 verifies an X.509 attestation for registration id reg:
// the leaf is within its validity, chains to the CAs of
// certificateAuthority identities and has CN reg (§5.6); the enrollment
// is the first X.509 CA group by name. The error wraps ErrCertificate, or
// says that no X.509 group exists.
func (s *dpsServer) authorizeX509(reg string, chain []*x509.Certificate) (dpsMatch, error) {
	if err := s.h.checkValidity(chain[0]); err != nil {
		return dpsMatch{}, err
	}
	if err := s.h.verifyCASigned(chain, reg); err != nil {
		return dpsMatch{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	names := slices.Sorted(maps.Keys(s.doc.X509Groups))
	if len(names) == 0 {
		return dpsMatch{}, errors.New("a client certificate without a token, and no X.509 enrollment group")
	}
	return dpsMatch{group: names[0], x509: true, enabled: s.doc.X509Groups[names[0]].Enabled}, nil
}

// authorize verifies password, a DPS SAS in any SDK's form (§5.2), for
// registration id reg: its resource must be {idScope}/registrations/{reg}
// and it must verify with the key of reg's individual enrollment, else
// with the derived key of one of the groups. A registration id no
// enrollment knows fails like a wrong key (real DPS cannot tell them
// apart). The error never holds the token.
func (s *dpsServer) authorize(reg, password string) (dpsMatch, error) {
	tok, err := iothub.ParseSAS(password)
	if err != nil {
		return dpsMatch{}, fmt.Errorf("no valid SAS token: %w", errors.Unwrap(err))
	}
	if tok.SKN != "" && tok.SKN != iothub.DPSKeyName {
		return dpsMatch{}, fmt.Errorf("%w: skn %q", iothub.ErrSASAudience, tok.SKN)
	}
	res, err := tok.Resource()
	if err != nil {
		return dpsMatch{}, err
	}
	s.mu.Lock()
	scope := s.doc.IDScope
	cands := s.candidatesLocked(reg)
	s.mu.Unlock()
	if res != iothub.DPSResource(scope, reg) {
		return dpsMatch{}, fmt.Errorf("%w: resource %q", iothub.ErrSASAudience, res)
	}
	now := s.h.opts.Now()
	for _, m := range cands {
		switch err := tok.Verify(m.key, now); {
		case err == nil:
			return m, nil
		case !errors.Is(err, iothub.ErrSASSignature):
			return dpsMatch{}, err // expired, or a malformed sig
		}
	}
	return dpsMatch{}, iothub.ErrSASSignature
}

// candidatesLocked returns the enrollments reg may register through: its
// individual enrollment if it has one, else every group (by name), with
// the device keys. s.mu is held.
func (s *dpsServer) candidatesLocked(reg string) []dpsMatch {
	if e, ok := s.doc.Enrollments[reg]; ok {
		return []dpsMatch{{key: e.Key, enabled: e.Enabled}}
	}
	names := make([]string, 0, len(s.doc.Groups))
	for name := range s.doc.Groups {
		names = append(names, name)
	}
	slices.Sort(names)
	var out []dpsMatch
	for _, name := range names {
		g := s.doc.Groups[name]
		if key, err := iothub.DeriveDeviceKey(g.Key, reg); err == nil {
			out = append(out, dpsMatch{key: key, group: name, enabled: g.Enabled})
		}
	}
	return out
}

// assign registers reg in the hub with the device key (an existing device
// gets the key; a deleted one is created again) and records the
// registration under a new operation id.
func (s *dpsServer) assign(reg string, m dpsMatch) (dpsRecord, error) {
	_, existed := s.h.reg.lookup(reg)
	spec := identitySpec{PrimaryKey: m.key, SecondaryKey: m.key}
	if m.x509 {
		spec = identitySpec{AuthType: authCA}
	}
	if _, err := s.h.putIdentity(reg, spec, "*"); err != nil {
		return dpsRecord{}, err
	}
	now := iothub.DPSTime(s.h.opts.Now())
	s.mu.Lock()
	defer s.mu.Unlock()
	prev := s.doc.Registrations[reg]
	rec := &dpsRecord{
		OperationID: newOperationID(),
		Group:       m.group,
		State: iothub.DPSRegistrationState{
			RegistrationID:         reg,
			CreatedDateTimeUTC:     now,
			AssignedHub:            HostName,
			DeviceID:               reg,
			Status:                 iothub.DPSStatusAssigned,
			Substatus:              substatusInitial,
			LastUpdatedDateTimeUTC: now,
			ETag:                   newDPSETag(),
		},
	}
	if m.x509 { // the attestation echo (§5.4)
		rec.State.X509 = &iothub.DPSX509{EnrollmentGroupID: m.group}
	}
	if prev != nil {
		rec.State.CreatedDateTimeUTC = prev.State.CreatedDateTimeUTC
		if !existed {
			rec.State.Substatus = substatusReset
		}
	}
	if prev != nil { // one operation per registration: re-registering forever grows nothing
		delete(s.ops, prev.OperationID)
	}
	s.doc.Registrations[reg] = rec
	s.ops[rec.OperationID] = reg
	if err := s.saveLocked(); err != nil {
		return dpsRecord{}, err
	}
	return *rec, nil
}

// refuse logs a refused request and returns its error reply.
func (s *dpsServer) refuse(reg string, status, code int, msg string, reason error) dpsReply {
	s.log.Warn("dps request refused", logkey.RegistrationID, reg, logkey.Status, status, logkey.ErrorCode, code,
		logkey.Reason, reason.Error())
	return s.fail(status, code, msg)
}

// fail is an error reply with the DPS error body.
func (s *dpsServer) fail(status, code int, msg string) dpsReply {
	return s.json(status, 0, iothub.DPSError{
		ErrorCode:    code,
		TrackingID:   iothub.NewRequestID(),
		Message:      msg,
		TimestampUTC: iothub.DPSTime(s.h.opts.Now()),
	})
}

// json is a reply with v as its body.
func (s *dpsServer) json(status int, retryAfter time.Duration, v any) dpsReply {
	b, err := json.Marshal(v)
	if err != nil { // plain structs: cannot happen
		s.log.Error("dps reply not encoded", logkey.Err, err)
		b = []byte("{}")
	}
	return dpsReply{status: status, retryAfter: retryAfter, body: b}
}

// write publishes one response to cl alone at QoS 1 (§5.4: real DPS
// answers at QoS 1). A failed write means cl is gone.
func (s *dpsServer) write(cl *mqtt.Client, topic string, body []byte) {
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1},
		TopicName:   topic,
		Payload:     body,
		Created:     time.Now().Unix(),
	}
	id, err := cl.NextPacketID()
	if err != nil {
		s.log.Warn("dps response dropped", logkey.RegistrationID, cl.ID, logkey.Topic, topic, logkey.Err, err)
		return
	}
	pk.PacketID = uint16(id)
	cl.State.Inflight.Set(pk) // until the PUBACK
	if err := cl.WritePacket(pk); err != nil {
		cl.State.Inflight.Delete(pk.PacketID)
		s.log.Debug("dps response not written", logkey.RegistrationID, cl.ID, logkey.Topic, topic, logkey.Err, err)
	}
}

// newOperationID returns an operation id of the real shape: "4." + 16 hex
// digits + "." + a UUID (§5.4). It holds no '&', '#', '+' or '/'.
func newOperationID() string { return "4." + newHex(8) + "." + iothub.NewRequestID() }

// newDPSETag returns an etag shaped like the real ones: base64 of a quoted
// Cosmos-style etag (§5.4).
func newDPSETag() string {
	id := iothub.NewRequestID()
	return base64.StdEncoding.EncodeToString([]byte(`"` + id[:24] + newHex(6) + `"`))
}
