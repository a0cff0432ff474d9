package codec

import "encoding/binary"

// JoinLen is the length of a JOIN payload.
const JoinLen = 24

// JOIN offsets (see "JOIN payload" in doc.go).
const (
	offJoinKind   = 0  // u8 JoinKind; bytes 1-7 reserved = 0
	offJoinMember = 8  // u64 ask: the origin asked; answer: the receiver welcomed
	offJoinFrom   = 16 // u64 answer: first seq sent to the receiver; ask: 0
)

// JoinKind says whether a JOIN frame asks or answers.
type JoinKind uint8

// JOIN kinds; anything else is ErrBadJoin.
const (
	JoinAsk    JoinKind = 1 // "from which sequence am I in your fan-out?"
	JoinAnswer JoinKind = 2 // "from From on, every DATA frame of this epoch is sent to you"
	// JoinMarks asks the member named by Member for its stream marks:
	// for every origin, a sequence of the origin's epoch that it knows was
	// published. The answer is SYNC frames of kind SyncMarks. A node asks
	// before it is ready: every frame up to such a mark predates its
	// caches, so an origin it first hears of later is owed only what
	// follows the mark, not the epoch from seq 1. From is 0.
	JoinMarks JoinKind = 3
)

// Join is the join handshake that closes the window between a node
// starting and its first DATA frame from an origin: a receiver asks each
// origin from which sequence of the origin's epoch it is in the origin's
// fan-out, and the origin answers with that sequence. Everything from it
// on is the receiver's to repair or flag; nothing before it was meant for
// the receiver.
type Join struct {
	Kind   JoinKind
	Member uint64 // ask: the origin asked; answer: the receiver welcomed
	From   uint64 // answer: first seq (>= 1) the receiver is owed; ask: 0
}

// AppendJoin appends a JOIN payload. It does not allocate when dst has
// the room.
func AppendJoin(dst []byte, j *Join) []byte {
	dst = append(dst, byte(j.Kind), 0, 0, 0, 0, 0, 0, 0)
	dst = binary.BigEndian.AppendUint64(dst, j.Member)
	return binary.BigEndian.AppendUint64(dst, j.From)
}

// ParseJoin decodes a JOIN payload; n == JoinLen. Errors: ErrShort,
// ErrBadJoin (unknown kind, reserved bytes set, an answer from seq 0 or an
// ask or marks request with a seq). It does not allocate.
func ParseJoin(b []byte) (j Join, n int, err error) {
	if len(b) < JoinLen {
		return Join{}, 0, ErrShort
	}
	j.Kind = JoinKind(b[offJoinKind])
	for _, r := range b[offJoinKind+1 : offJoinMember] {
		if r != 0 {
			return Join{}, 0, ErrBadJoin
		}
	}
	j.Member = binary.BigEndian.Uint64(b[offJoinMember:])
	j.From = binary.BigEndian.Uint64(b[offJoinFrom:])
	switch {
	case (j.Kind == JoinAsk || j.Kind == JoinMarks) && j.From == 0:
	case j.Kind == JoinAnswer && j.From != 0:
	default:
		return Join{}, 0, ErrBadJoin
	}
	return j, JoinLen, nil
}
