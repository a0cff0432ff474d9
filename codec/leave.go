package codec

import "encoding/binary"

// LeaveLen is the length of a LEAVE payload: the leaver's incarnation.
const LeaveLen = 8

// LEAVE offsets (see "LEAVE payload" in doc.go).
const offLeaveIncarnation = 0 // u64 incarnation of the leaving node

// AppendLeave appends a LEAVE payload. It does not allocate when dst has
// the room.
func AppendLeave(dst []byte, incarnation uint64) []byte {
	return binary.BigEndian.AppendUint64(dst, incarnation)
}

// ParseLeave decodes a LEAVE payload; n == LeaveLen. Errors: ErrShort. It
// does not allocate.
func ParseLeave(b []byte) (incarnation uint64, n int, err error) {
	if len(b) < LeaveLen {
		return 0, 0, ErrShort
	}
	return binary.BigEndian.Uint64(b[offLeaveIncarnation:]), LeaveLen, nil
}
