package codec

import (
	"encoding/binary"
	"net/netip"
)

// ALIVE payload lengths.
const (
	// AliveFixedLen is the fixed part of an ALIVE payload, before the
	// digest entries: incarnation, hwm, address, reserved u16.
	AliveFixedLen = 8 + 8 + AddrLen + 2
	// DigestEntryLen is one member digest entry: id, epoch, incarnation,
	// address, state, reserved u8.
	DigestEntryLen = 8 + 8 + 8 + AddrLen + 1 + 1
)

// ALIVE fixed part offsets (see "ALIVE payload" in doc.go).
const (
	offAliveIncarnation = 0  // u64 sender's incarnation
	offAliveHWM         = 8  // u64 sender's data high-water seq
	offAliveAddr        = 16 // AddrLen bytes, sender's advertised address
	offAliveReserved    = 34 // u16 zero
)

// Digest entry offsets (see "ALIVE payload" in doc.go).
const (
	offDigestID          = 0  // u64 member id
	offDigestEpoch       = 8  // u64 member boot epoch
	offDigestIncarnation = 16 // u64 member incarnation
	offDigestAddr        = 24 // AddrLen bytes, member address
	offDigestState       = 42 // u8 MemberState
	offDigestReserved    = 43 // u8 zero
)

// MemberState is a member's state as seen by the sender of a digest.
type MemberState uint8

// Member states.
const (
	StateAlive   MemberState = 1
	StateSuspect MemberState = 2
	StateDead    MemberState = 3
	StateLeft    MemberState = 4
)

// String returns the state's name, e.g. "alive", or "MemberState(9)".
func (s MemberState) String() string {
	switch s {
	case StateAlive:
		return "alive"
	case StateSuspect:
		return "suspect"
	case StateDead:
		return "dead"
	case StateLeft:
		return "left"
	}
	return "MemberState(" + itoa(uint64(s)) + ")"
}

// Alive is the fixed part of an ALIVE (heartbeat) payload. The header's
// Origin and Epoch identify the sender; Count digest entries follow.
type Alive struct {
	Incarnation uint64         // SWIM incarnation (refutation)
	HWM         uint64         // sender's current data high-water seq
	Addr        netip.AddrPort // address the sender is reached at; zero: use the packet source
}

// DigestEntry describes one member the sender knows.
type DigestEntry struct {
	ID          uint64
	Epoch       uint64
	Incarnation uint64
	Addr        netip.AddrPort
	State       MemberState
}

// AlivePayloadLen returns the payload length of an ALIVE frame carrying
// entries digest entries.
func AlivePayloadLen(entries int) int { return AliveFixedLen + entries*DigestEntryLen }

// MaxDigestEntries returns how many digest entries an ALIVE frame holds
// within a frameSize budget (with a tag reserved when auth is set).
func MaxDigestEntries(frameSize int, auth bool) int {
	room := min(frameSize, MaxFrameSize) - HeaderLen - AliveFixedLen
	if auth {
		room -= TagLen
	}
	return max(room/DigestEntryLen, 0)
}

// AppendAlive appends the AliveFixedLen-byte fixed part of an ALIVE
// payload. It does not allocate when dst has the room.
func AppendAlive(dst []byte, a *Alive) []byte {
	dst = binary.BigEndian.AppendUint64(dst, a.Incarnation)
	dst = binary.BigEndian.AppendUint64(dst, a.HWM)
	dst = AppendAddr(dst, a.Addr)
	return binary.BigEndian.AppendUint16(dst, 0) // reserved
}

// ParseAlive decodes the fixed part of an ALIVE payload; n ==
// AliveFixedLen. Errors: ErrShort, ErrBadAddr, ErrReserved. It does not
// allocate.
func ParseAlive(b []byte) (a Alive, n int, err error) {
	if len(b) < AliveFixedLen {
		return Alive{}, 0, ErrShort
	}
	a.Addr, _, err = ParseAddr(b[offAliveAddr:])
	if err != nil {
		return Alive{}, 0, err
	}
	if binary.BigEndian.Uint16(b[offAliveReserved:]) != 0 {
		return Alive{}, 0, ErrReserved
	}
	a.Incarnation = binary.BigEndian.Uint64(b[offAliveIncarnation:])
	a.HWM = binary.BigEndian.Uint64(b[offAliveHWM:])
	return a, AliveFixedLen, nil
}

// AppendDigestEntry appends the DigestEntryLen-byte encoding of e. It does
// not allocate when dst has the room.
func AppendDigestEntry(dst []byte, e *DigestEntry) []byte {
	dst = binary.BigEndian.AppendUint64(dst, e.ID)
	dst = binary.BigEndian.AppendUint64(dst, e.Epoch)
	dst = binary.BigEndian.AppendUint64(dst, e.Incarnation)
	dst = AppendAddr(dst, e.Addr)
	return append(dst, uint8(e.State), 0) // state, reserved
}

// ParseDigestEntry decodes the digest entry at the start of b; n ==
// DigestEntryLen. Errors: ErrShort, ErrBadAddr, ErrBadState, ErrReserved.
// It does not allocate.
func ParseDigestEntry(b []byte) (e DigestEntry, n int, err error) {
	if len(b) < DigestEntryLen {
		return DigestEntry{}, 0, ErrShort
	}
	e.Addr, _, err = ParseAddr(b[offDigestAddr:])
	if err != nil {
		return DigestEntry{}, 0, err
	}
	e.State = MemberState(b[offDigestState])
	if e.State < StateAlive || e.State > StateLeft {
		return DigestEntry{}, 0, ErrBadState
	}
	if b[offDigestReserved] != 0 {
		return DigestEntry{}, 0, ErrReserved
	}
	e.ID = binary.BigEndian.Uint64(b[offDigestID:])
	e.Epoch = binary.BigEndian.Uint64(b[offDigestEpoch:])
	e.Incarnation = binary.BigEndian.Uint64(b[offDigestIncarnation:])
	return e, DigestEntryLen, nil
}
