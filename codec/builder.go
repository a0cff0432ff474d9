package codec

import (
	"encoding/binary"
	"math"
)

// FrameBuilder packs DATA records into one frame until a size budget is
// reached. It writes into a caller-owned buffer and never allocates when
// that buffer's capacity covers the budget. The zero value is an empty
// builder; call Reset before Add.
type FrameBuilder struct {
	buf   []byte // header + records so far
	limit int    // largest len(buf) allowed: budget minus reserved tag
	count int
}

// Reset starts a new frame in buf[:0] with header h (h.Count and
// h.PayloadLen are ignored: Finish fills them). max is the frame size
// budget; it is clamped to MaxFrameSize and to cap(buf), so buf should
// have cap >= max. When h.Flags has FlagAuth, TagLen bytes of the budget
// are reserved for the tag, which Finish does not write: the caller seals
// the frame later and appends the tag within the budget.
func (fb *FrameBuilder) Reset(buf []byte, h Header, max int) {
	h.Count, h.PayloadLen = 0, 0
	max = min(max, MaxFrameSize, cap(buf))
	if h.Flags&FlagAuth != 0 {
		max -= TagLen
	}
	fb.buf = AppendHeader(buf[:0], &h)
	fb.limit = max
	fb.count = 0
}

// Fits reports whether a record with a keyLen-byte key fits in the frame.
// A keyLen outside 1..MaxKeyLen never fits.
func (fb *FrameBuilder) Fits(keyLen int) bool {
	return keyLen > 0 && keyLen <= MaxKeyLen &&
		fb.count < math.MaxUint16 &&
		len(fb.buf) >= HeaderLen &&
		len(fb.buf)+RecordLen(keyLen) <= fb.limit
}

// Add appends a record for key. It returns false, writing nothing, when the
// record does not fit (the frame is full: Finish it and start another) and
// also when key fails ValidateKey or flags is not exactly one of
// RecordExact and RecordPrefix; callers validate keys first so that false
// means full. It does not allocate.
func (fb *FrameBuilder) Add(key []byte, flags RecordFlags) bool {
	if !validRecordFlags(flags) || !fb.Fits(len(key)) {
		return false
	}
	fb.buf = AppendRecord(fb.buf, key, flags)
	fb.count++
	return true
}

// Count returns the number of records added since Reset.
func (fb *FrameBuilder) Count() int { return fb.count }

// Len returns the frame's length so far: header plus records, no tag.
func (fb *FrameBuilder) Len() int { return len(fb.buf) }

// Remaining returns how many more bytes of records fit in the budget.
func (fb *FrameBuilder) Remaining() int { return max(fb.limit-len(fb.buf), 0) }

// Finish patches the header's count and payload length and returns the
// frame (header and records, no tag), a view of the buffer given to Reset.
// It returns nil if Reset was never called. It does not allocate.
func (fb *FrameBuilder) Finish() []byte {
	if len(fb.buf) < HeaderLen {
		return nil
	}
	binary.BigEndian.PutUint16(fb.buf[offCount:], uint16(fb.count))
	binary.BigEndian.PutUint16(fb.buf[offPayloadLen:], uint16(len(fb.buf)-HeaderLen))
	return fb.buf
}
