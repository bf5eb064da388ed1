package ionix

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"strconv"
	"strings"
	"unicode/utf8"
)

// FingerprintLen is the length of a Fingerprint in hex characters.
const FingerprintLen = 16

// fingerprintVersion is hashed first so that a future change of the fields
// or their encoding can never collide with today's fingerprints.
const fingerprintVersion = "ionixsnow-fingerprint-v1"

// Fingerprint is a short hash (the first 16 hex characters of a SHA-256) of
// the fields that reach the incident: title, urgency, type, description,
// summary, asset and first_opened_at. Each field is hashed with its length in
// front, so no two different items share the input. Tags, CVEs, state and
// timestamps other than first_opened_at do not change it.
func (a ActionItem) Fingerprint() string {
	h := sha256.New()
	var length [8]byte
	for _, field := range []string{
		fingerprintVersion,
		a.Title,
		strconv.FormatFloat(a.Urgency+0, 'g', -1, 64), // + 0: -0 and 0 are the same urgency
		a.Type,
		a.Description,
		a.Summary,
		a.Asset,
		a.FirstOpenedAt,
	} {
		binary.BigEndian.PutUint64(length[:], uint64(len(field)))
		h.Write(length[:])
		h.Write([]byte(field))
	}
	return hex.EncodeToString(h.Sum(nil))[:FingerprintLen]
}

// MsgID is the de-duplication id of an event, the value of the Nats-Msg-Id
// header: "<id>:<event>:<fingerprint>". The same item published twice gets
// the same MsgID; a changed item gets a new one.
//
// So that the value is always a valid header value, the id is written with
// '%', control characters and invalid UTF-8 bytes escaped as %XX; ids without
// them (all ordinary ids) appear unchanged. An id whose escaped form is longer
// than MaxMsgIDIDLen is bounded (Bound, mark "%~", which escaped text never
// holds: its '%' is always followed by two hex digits).
func MsgID(a ActionItem, ev Event) string {
	return msgIDOfID(a.ID) + ":" + string(ev) + ":" + a.Fingerprint()
}

// msgIDOfID is the id part of a MsgID.
func msgIDOfID(id string) string {
	return Bound(escapeHeaderText(id), id, MaxMsgIDIDLen, "%~")
}

// MsgIDNth is the de-duplication id of an item's n-th publication by a publisher
// that counts them (the poller): MsgID for the first (n = 0), MsgID + ":<n>" after
// it. Counting lets an event that repeats an earlier id — an item reopened with the
// fingerprint it had, closed again, or changed back — be a new message within the
// duplicate window, while a retried publication keeps its n and stays one message.
func MsgIDNth(a ActionItem, ev Event, n int) string {
	if n <= 0 {
		return MsgID(a, ev)
	}
	return MsgID(a, ev) + ":" + strconv.Itoa(n)
}

// escapeHeaderText percent-encodes '%', control characters and invalid UTF-8
// bytes, which keeps the escaping reversible and the result one header line.
func escapeHeaderText(s string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == '%' || r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || (r == utf8.RuneError && size == 1) {
			for _, c := range []byte(s[i : i+size]) {
				b.WriteByte('%')
				b.WriteByte(hexDigits[c>>4])
				b.WriteByte(hexDigits[c&0x0f])
			}
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}
