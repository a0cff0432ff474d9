package codec

import (
	"encoding/binary"
	"net/netip"
)

// PROBE and SYNC payload lengths.
const (
	// ProbeFixedLen is the fixed part of a PROBE payload, before the
	// piggybacked updates: kind, reserved, seq, target id, target address,
	// reserved u16.
	ProbeFixedLen = 1 + 7 + 8 + 8 + AddrLen + 2
	// UpdateLen is one piggybacked membership update: id, epoch,
	// incarnation, address, state, reserved u8, and who asserted it.
	UpdateLen = 8 + 8 + 8 + AddrLen + 1 + 1 + 8
	// SyncFixedLen is the fixed part of a SYNC payload, before its
	// digest entries: kind, reserved, part, parts, reserved u16.
	SyncFixedLen = 1 + 1 + 2 + 2 + 2
	// SyncSumLen is the body of a SyncDigest SYNC, after its fixed part:
	// table hash u64, members u32, reserved u32.
	SyncSumLen = 8 + 4 + 4
)

// PROBE fixed part offsets (see "PROBE payload" in doc.go).
const (
	offProbeKind       = 0  // u8 ProbeKind; bytes 1-7 reserved = 0
	offProbeSeq        = 8  // u64 the prober's probe sequence
	offProbeTarget     = 16 // u64 the member probed
	offProbeTargetAddr = 24 // AddrLen bytes, where the member probed lives
	offProbeReserved   = 42 // u16 zero
)

// Update entry offsets (see "PROBE payload" in doc.go).
const (
	offUpdateID          = 0  // u64 member id
	offUpdateEpoch       = 8  // u64 member boot epoch
	offUpdateIncarnation = 16 // u64 member incarnation
	offUpdateAddr        = 24 // AddrLen bytes, member address
	offUpdateState       = 42 // u8 MemberState
	offUpdateReserved    = 43 // u8 zero
	offUpdateFrom        = 44 // u64 the node that asserted it
)

// SYNC fixed part offsets (see "SYNC payload" in doc.go).
const (
	offSyncKind      = 0 // u8 SyncKind
	offSyncReserved1 = 1 // u8 zero
	offSyncPart      = 2 // u16 this frame's index, 0-based
	offSyncParts     = 4 // u16 frames in the exchange's half
	offSyncReserved2 = 6 // u16 zero
)

// ProbeKind says what a PROBE frame is.
type ProbeKind uint8

// PROBE kinds; anything else is ErrBadProbe.
const (
	ProbePing    ProbeKind = 1 // "are you there?" to Target itself
	ProbePingReq ProbeKind = 2 // "probe Target at TargetAddr for me"
	ProbeAck     ProbeKind = 3 // "Target answered probe Seq"
	ProbeNack    ProbeKind = 4 // "I probed Target for you and it did not answer"
)

// Probe is the fixed part of a PROBE frame (SWIM failure detection). Seq
// is the prober's: an ack carries the sequence of the ping or ping-req it
// answers. Target is the member probed, so a node at a reused address
// does not answer for its predecessor. TargetAddr is required in a
// ping-req and may be zero in the other kinds.
type Probe struct {
	Kind       ProbeKind
	Seq        uint64
	Target     uint64
	TargetAddr netip.AddrPort
}

// Update is a membership update piggybacked on a PROBE: member ID is in
// State at (Epoch, Incarnation) at Addr, as From asserts.
type Update struct {
	ID          uint64
	Epoch       uint64
	Incarnation uint64
	Addr        netip.AddrPort
	State       MemberState
	From        uint64
}

// AppendProbe appends the ProbeFixedLen-byte fixed part of a PROBE
// payload; the caller appends Count updates after it. It does not
// allocate when dst has the room.
func AppendProbe(dst []byte, p *Probe) []byte {
	dst = append(dst, byte(p.Kind), 0, 0, 0, 0, 0, 0, 0)
	dst = binary.BigEndian.AppendUint64(dst, p.Seq)
	dst = binary.BigEndian.AppendUint64(dst, p.Target)
	dst = AppendAddr(dst, p.TargetAddr)
	return binary.BigEndian.AppendUint16(dst, 0)
}

// ParseProbe decodes the fixed part of a PROBE payload; n ==
// ProbeFixedLen. Errors: ErrShort, ErrBadProbe (unknown kind, reserved
// bytes set, a ping-req without an address), ErrBadAddr. It does not
// allocate.
func ParseProbe(b []byte) (p Probe, n int, err error) {
	if len(b) < ProbeFixedLen {
		return Probe{}, 0, ErrShort
	}
	p.Kind = ProbeKind(b[offProbeKind])
	if p.Kind < ProbePing || p.Kind > ProbeNack {
		return Probe{}, 0, ErrBadProbe
	}
	for _, r := range b[offProbeKind+1 : offProbeSeq] {
		if r != 0 {
			return Probe{}, 0, ErrBadProbe
		}
	}
	if binary.BigEndian.Uint16(b[offProbeReserved:]) != 0 {
		return Probe{}, 0, ErrBadProbe
	}
	p.TargetAddr, _, err = ParseAddr(b[offProbeTargetAddr:])
	if err != nil {
		return Probe{}, 0, err
	}
	if p.Kind == ProbePingReq && !p.TargetAddr.IsValid() {
		return Probe{}, 0, ErrBadProbe
	}
	p.Seq = binary.BigEndian.Uint64(b[offProbeSeq:])
	p.Target = binary.BigEndian.Uint64(b[offProbeTarget:])
	return p, ProbeFixedLen, nil
}

// AppendUpdate appends one UpdateLen-byte update. It does not allocate
// when dst has the room.
func AppendUpdate(dst []byte, u *Update) []byte {
	dst = binary.BigEndian.AppendUint64(dst, u.ID)
	dst = binary.BigEndian.AppendUint64(dst, u.Epoch)
	dst = binary.BigEndian.AppendUint64(dst, u.Incarnation)
	dst = AppendAddr(dst, u.Addr)
	dst = append(dst, uint8(u.State), 0)
	return binary.BigEndian.AppendUint64(dst, u.From)
}

// ParseUpdate decodes the update at the start of b; n == UpdateLen.
// Errors: ErrShort, ErrBadAddr, ErrBadState, ErrReserved. It does not
// allocate.
func ParseUpdate(b []byte) (u Update, n int, err error) {
	if len(b) < UpdateLen {
		return Update{}, 0, ErrShort
	}
	u.Addr, _, err = ParseAddr(b[offUpdateAddr:])
	if err != nil {
		return Update{}, 0, err
	}
	u.State = MemberState(b[offUpdateState])
	if u.State < StateAlive || u.State > StateLeft {
		return Update{}, 0, ErrBadState
	}
	if b[offUpdateReserved] != 0 {
		return Update{}, 0, ErrReserved
	}
	u.ID = binary.BigEndian.Uint64(b[offUpdateID:])
	u.Epoch = binary.BigEndian.Uint64(b[offUpdateEpoch:])
	u.Incarnation = binary.BigEndian.Uint64(b[offUpdateIncarnation:])
	u.From = binary.BigEndian.Uint64(b[offUpdateFrom:])
	return u, UpdateLen, nil
}

// ProbePayloadLen is the payload length of a PROBE with count updates.
func ProbePayloadLen(count int) int { return ProbeFixedLen + count*UpdateLen }

// SyncKind says which half of a push-pull a SYNC frame is.
type SyncKind uint8

// SYNC kinds; anything else is ErrBadSync.
const (
	SyncPush  SyncKind = 1 // the initiator's table: answer with yours
	SyncReply SyncKind = 2 // the answer: do not answer it
	// SyncDigest: a summary of the initiator's table (a SyncSum, no
	// entries); a receiver whose table sums differently pushes its own
	// (SyncPush), and the exchange goes on as a full push-pull. Tables
	// that agree cost one small frame.
	SyncDigest SyncKind = 3
	// SyncMarks answers a JOIN of kind JoinMarks: Count tree entries
	// (TreeEntry, TreeEntryLen bytes each), in Parts frames, each the
	// sender's mark of one origin's epoch: a sequence it knows that
	// origin published (its own last sent, or what it has received
	// without a gap). A sender with no marks sends one part with none.
	SyncMarks SyncKind = 4
)

// SyncSum summarises a member table for a SyncDigest: a hash over the
// entries a push would carry (the engine sums its live members'), and how
// many there are.
type SyncSum struct {
	Hash    uint64
	Members uint32
}

// AppendSyncSum appends the SyncSumLen-byte body of a SyncDigest SYNC.
// It does not allocate when dst has the room.
func AppendSyncSum(dst []byte, s *SyncSum) []byte {
	dst = binary.BigEndian.AppendUint64(dst, s.Hash)
	dst = binary.BigEndian.AppendUint32(dst, s.Members)
	return binary.BigEndian.AppendUint32(dst, 0)
}

// ParseSyncSum decodes the body of a SyncDigest SYNC; n == SyncSumLen.
// Errors: ErrShort, ErrBadSync (reserved bytes set). It does not
// allocate.
func ParseSyncSum(b []byte) (s SyncSum, n int, err error) {
	if len(b) < SyncSumLen {
		return SyncSum{}, 0, ErrShort
	}
	if binary.BigEndian.Uint32(b[12:]) != 0 {
		return SyncSum{}, 0, ErrBadSync
	}
	return SyncSum{Hash: binary.BigEndian.Uint64(b), Members: binary.BigEndian.Uint32(b[8:])}, SyncSumLen, nil
}

// Sync is the fixed part of a SYNC frame (push-pull of the whole member
// table). A table that does not fit one frame travels in Parts frames,
// Part 0 first; Count digest entries follow in each.
type Sync struct {
	Kind  SyncKind
	Part  uint16
	Parts uint16
}

// AppendSync appends the SyncFixedLen-byte fixed part of a SYNC payload.
// It does not allocate when dst has the room.
func AppendSync(dst []byte, s *Sync) []byte {
	dst = append(dst, byte(s.Kind), 0)
	dst = binary.BigEndian.AppendUint16(dst, s.Part)
	dst = binary.BigEndian.AppendUint16(dst, s.Parts)
	return binary.BigEndian.AppendUint16(dst, 0)
}

// ParseSync decodes the fixed part of a SYNC payload; n == SyncFixedLen.
// Errors: ErrShort, ErrBadSync (unknown kind, reserved bytes set, Part
// not below Parts, a SyncDigest in more than one part). It does not
// allocate.
func ParseSync(b []byte) (s Sync, n int, err error) {
	if len(b) < SyncFixedLen {
		return Sync{}, 0, ErrShort
	}
	s.Kind = SyncKind(b[offSyncKind])
	s.Part = binary.BigEndian.Uint16(b[offSyncPart:])
	s.Parts = binary.BigEndian.Uint16(b[offSyncParts:])
	if (s.Kind < SyncPush || s.Kind > SyncMarks) || b[offSyncReserved1] != 0 ||
		binary.BigEndian.Uint16(b[offSyncReserved2:]) != 0 || s.Part >= s.Parts ||
		(s.Kind == SyncDigest && s.Parts != 1) {
		return Sync{}, 0, ErrBadSync
	}
	return s, SyncFixedLen, nil
}

// SyncPayloadLen is the payload length of a SYNC with count digest
// entries (SyncPush, SyncReply).
func SyncPayloadLen(count int) int { return SyncFixedLen + count*DigestEntryLen }

// SyncMarksPayloadLen is the payload length of a SyncMarks SYNC with
// count tree entries.
func SyncMarksPayloadLen(count int) int { return SyncFixedLen + count*TreeEntryLen }
