package codec

import "encoding/binary"

// AckLen is the length of an ACK payload.
const AckLen = 24

// ACK offsets (see "ACK payload" in doc.go).
const (
	offAckOrigin = 0  // u64 the origin whose stream is acknowledged
	offAckEpoch  = 8  // u64 its boot epoch
	offAckCum    = 16 // u64 every seq up to this one was applied (or given up)
)

// Ack is a receiver's report of its progress on one origin's DATA stream.
type Ack struct {
	Origin, Epoch uint64
	Cum           uint64
}

// AppendAck appends an ACK payload. It does not allocate when dst has the
// room.
func AppendAck(dst []byte, a *Ack) []byte {
	dst = binary.BigEndian.AppendUint64(dst, a.Origin)
	dst = binary.BigEndian.AppendUint64(dst, a.Epoch)
	return binary.BigEndian.AppendUint64(dst, a.Cum)
}

// ParseAck decodes an ACK payload; n == AckLen. Errors: ErrShort. It does
// not allocate.
func ParseAck(b []byte) (a Ack, n int, err error) {
	if len(b) < AckLen {
		return Ack{}, 0, ErrShort
	}
	a.Origin = binary.BigEndian.Uint64(b[offAckOrigin:])
	a.Epoch = binary.BigEndian.Uint64(b[offAckEpoch:])
	a.Cum = binary.BigEndian.Uint64(b[offAckCum:])
	return a, AckLen, nil
}
