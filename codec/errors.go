package codec

import "errors"

// Sentinel errors returned by every Parse and Validate function. Each is
// returned bare (never wrapped), so errors.Is and == both work and returning
// one never allocates. Every text starts with "codec: ".
var (
	// ErrShort: the buffer ends before the structure being parsed does.
	ErrShort = errors.New("codec: buffer too short")
	// ErrBadMagic: the first two bytes are not Magic; not a Warp Mesh frame.
	ErrBadMagic = errors.New("codec: bad magic")
	// ErrBadVersion: the header carries a wire version other than Version.
	ErrBadVersion = errors.New("codec: unsupported version")
	// ErrBadHeaderLen: the header-length byte is not HeaderLen.
	ErrBadHeaderLen = errors.New("codec: bad header length")
	// ErrBadType: the frame type is not one of the Type constants.
	ErrBadType = errors.New("codec: unknown frame type")
	// ErrBadFlags: the header sets a flag bit that is undefined, or a flag
	// the frame type does not allow (FlagRetransmit outside DATA).
	ErrBadFlags = errors.New("codec: bad header flags")
	// ErrReserved: a reserved field (header, record, ALIVE, digest entry)
	// is not zero.
	ErrReserved = errors.New("codec: reserved field not zero")
	// ErrBadLength: a length does not match: the datagram is not exactly
	// header + payload (+ tag), a fixed-size payload has the wrong size,
	// records leave trailing bytes, or a DATA frame carries no record.
	ErrBadLength = errors.New("codec: bad length")
	// ErrTooManyRecords: the header count claims more records, digest
	// entries or ranges than the payload holds, or a non-zero count on a
	// frame type that carries none (LEAVE, HWM).
	ErrTooManyRecords = errors.New("codec: count exceeds payload")
	// ErrEmptyKey: a record key of length zero.
	ErrEmptyKey = errors.New("codec: empty key")
	// ErrKeyTooLong: a record key longer than MaxKeyLen.
	ErrKeyTooLong = errors.New("codec: key too long")
	// ErrBadRecordFlags: a record does not set exactly one of RecordExact
	// and RecordPrefix, or sets an undefined bit.
	ErrBadRecordFlags = errors.New("codec: bad record flags")
	// ErrBadHash: a record's xxhash64 does not match its key.
	ErrBadHash = errors.New("codec: record hash mismatch")
	// ErrBadAddr: an encoded address is neither all zero nor a usable
	// unicast address with a non-zero port.
	ErrBadAddr = errors.New("codec: bad address")
	// ErrBadRange: a NACK range with First == 0 or First > Last, or a NACK
	// with no range.
	ErrBadRange = errors.New("codec: bad sequence range")
	// ErrBadJoin: a JOIN payload with an unknown kind, reserved bytes set,
	// an answer from sequence 0 or an ask that names a sequence.
	ErrBadJoin = errors.New("codec: bad join")
	// ErrBadProbe: a PROBE with an unknown kind, reserved bytes set, or a
	// ping-req that names no address.
	ErrBadProbe = errors.New("codec: bad probe")
	// ErrBadSync: a SYNC with an unknown kind, reserved bytes set, or a
	// part number not below its part count.
	ErrBadSync = errors.New("codec: bad sync")
	// ErrBadTree: an IHAVE, GRAFT or PRUNE with no entry, an IHAVE or
	// GRAFT entry without a sequence, or a PRUNE entry with one.
	ErrBadTree = errors.New("codec: bad tree entry")
	// ErrBadState: a digest entry's member state is not a State constant.
	ErrBadState = errors.New("codec: bad member state")
	// ErrFrameTooLarge: a frame (or frame size budget) above MaxFrameSize.
	ErrFrameTooLarge = errors.New("codec: frame too large")
	// ErrFrameTooSmall: a frame size budget below MinFrameSize.
	ErrFrameTooSmall = errors.New("codec: frame size below minimum")
)
