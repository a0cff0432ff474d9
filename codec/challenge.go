package codec

import (
	"encoding/binary"
	"net/netip"
)

// ChallengeLen is the length of a CHALLENGE or RESPONSE payload.
const ChallengeLen = 8 + AddrLen + 2 + CookieLen

// CookieLen is the length of an address-validation cookie.
const CookieLen = 16

// CHALLENGE / RESPONSE offsets (see "CHALLENGE and RESPONSE payload" in
// doc.go).
const (
	offChallengeTime     = 0  // u64 challenger's clock when it issued the cookie
	offChallengeAddr     = 8  // AddrLen bytes, the address challenged
	offChallengeReserved = 26 // u16 zero
	offChallengeCookie   = 28 // CookieLen bytes, opaque to the responder
)

// Challenge is the payload of a CHALLENGE (an address-validation request)
// and of the RESPONSE that echoes it unchanged. Only the challenger
// interprets Time and Cookie: a keyed hash of Addr and Time under a secret
// that never leaves it. Addr is the address the challenge was sent to, so
// the challenger can check the echo whatever source address it comes from.
type Challenge struct {
	Time   uint64
	Addr   netip.AddrPort
	Cookie [CookieLen]byte
}

// AppendChallenge appends the ChallengeLen-byte payload of c. It does not
// allocate when dst has the room.
func AppendChallenge(dst []byte, c *Challenge) []byte {
	dst = binary.BigEndian.AppendUint64(dst, c.Time)
	dst = AppendAddr(dst, c.Addr)
	dst = binary.BigEndian.AppendUint16(dst, 0) // reserved
	return append(dst, c.Cookie[:]...)
}

// ParseChallenge decodes a CHALLENGE or RESPONSE payload; n ==
// ChallengeLen. Errors: ErrShort, ErrBadAddr (including "no address": a
// challenge always names the address it went to), ErrReserved. It does not
// allocate.
func ParseChallenge(b []byte) (c Challenge, n int, err error) {
	if len(b) < ChallengeLen {
		return Challenge{}, 0, ErrShort
	}
	c.Addr, _, err = ParseAddr(b[offChallengeAddr:])
	if err != nil {
		return Challenge{}, 0, err
	}
	if !c.Addr.IsValid() {
		return Challenge{}, 0, ErrBadAddr
	}
	if binary.BigEndian.Uint16(b[offChallengeReserved:]) != 0 {
		return Challenge{}, 0, ErrReserved
	}
	c.Time = binary.BigEndian.Uint64(b[offChallengeTime:])
	copy(c.Cookie[:], b[offChallengeCookie:offChallengeCookie+CookieLen])
	return c, ChallengeLen, nil
}
