package codec

import "encoding/binary"

// NACK payload lengths.
const (
	// NackFixedLen is the fixed part of a NACK payload: target origin and
	// epoch, before the ranges.
	NackFixedLen = 16
	// SeqRangeLen is one inclusive range of missing sequence numbers.
	SeqRangeLen = 16
)

// NACK offsets (see "NACK payload" in doc.go).
const (
	offNackOrigin = 0 // u64 origin whose frames are missing
	offNackEpoch  = 8 // u64 that origin's boot epoch
	offRangeFirst = 0 // u64 first missing seq (>= 1)
	offRangeLast  = 8 // u64 last missing seq (>= first), inclusive
)

// Nack names the origin (and its boot epoch) whose DATA frames a receiver
// is missing; the header's Origin is the receiver asking. Count SeqRanges
// follow.
type Nack struct{ Origin, Epoch uint64 }

// SeqRange is an inclusive range of data sequence numbers:
// 1 <= First <= Last.
type SeqRange struct{ First, Last uint64 }

// NackPayloadLen returns the payload length of a NACK with ranges ranges.
func NackPayloadLen(ranges int) int { return NackFixedLen + ranges*SeqRangeLen }

// MaxNackRanges returns how many ranges a NACK frame holds within a
// frameSize budget (with a tag reserved when auth is set).
func MaxNackRanges(frameSize int, auth bool) int {
	room := min(frameSize, MaxFrameSize) - HeaderLen - NackFixedLen
	if auth {
		room -= TagLen
	}
	return max(room/SeqRangeLen, 0)
}

// AppendNack appends the NackFixedLen-byte fixed part of a NACK payload.
// It does not allocate when dst has the room.
func AppendNack(dst []byte, n *Nack) []byte {
	dst = binary.BigEndian.AppendUint64(dst, n.Origin)
	return binary.BigEndian.AppendUint64(dst, n.Epoch)
}

// ParseNack decodes the fixed part of a NACK payload; m == NackFixedLen.
// Errors: ErrShort. It does not allocate.
func ParseNack(b []byte) (n Nack, m int, err error) {
	if len(b) < NackFixedLen {
		return Nack{}, 0, ErrShort
	}
	n.Origin = binary.BigEndian.Uint64(b[offNackOrigin:])
	n.Epoch = binary.BigEndian.Uint64(b[offNackEpoch:])
	return n, NackFixedLen, nil
}

// AppendSeqRange appends the SeqRangeLen-byte encoding of r. It does not
// allocate when dst has the room.
func AppendSeqRange(dst []byte, r SeqRange) []byte {
	dst = binary.BigEndian.AppendUint64(dst, r.First)
	return binary.BigEndian.AppendUint64(dst, r.Last)
}

// ParseSeqRange decodes the range at the start of b; n == SeqRangeLen.
// Errors: ErrShort, ErrBadRange (First == 0 or First > Last). It does not
// allocate.
func ParseSeqRange(b []byte) (r SeqRange, n int, err error) {
	if len(b) < SeqRangeLen {
		return SeqRange{}, 0, ErrShort
	}
	r.First = binary.BigEndian.Uint64(b[offRangeFirst:])
	r.Last = binary.BigEndian.Uint64(b[offRangeLast:])
	if r.First == 0 || r.First > r.Last {
		return SeqRange{}, 0, ErrBadRange
	}
	return r, SeqRangeLen, nil
}
