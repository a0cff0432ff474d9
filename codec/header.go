package codec

import (
	"encoding/binary"

	"github.com/cespare/xxhash/v2"
)

// Wire constants. Byte order is big-endian (network order) everywhere.
const (
	// Magic opens every frame: "WM".
	Magic uint16 = 0x574D
	// Version is the wire format version this package reads and writes.
	Version uint8 = 1
	// HeaderLen is the fixed header length, also written in the header.
	HeaderLen = 56
	// TagLen is the AEAD tag that trails the payload iff FlagAuth is set.
	TagLen = 16
	// DefaultMaxFrameSize is the default frame size budget: fits a 1500
	// byte Ethernet MTU with IPv6 and UDP headers and room for tunnels.
	DefaultMaxFrameSize = 1400
	// MaxFrameSize is the largest UDP payload over IPv4.
	MaxFrameSize = 65507
	// MinFrameSize is the smallest frame size budget accepted by
	// ValidateFrameSize: 1232 bytes, the UDP payload that the IPv6 minimum
	// link MTU (1280) always carries unfragmented. It holds a record with a
	// MaxKeyLen key plus the header and tag (1108 bytes) and an ALIVE frame
	// with MaxDigestEntries(MinFrameSize, true) = 25 digest entries.
	MinFrameSize = 1232
	// DefaultHopLimit is the default number of relay hops a frame may
	// travel; enough for relayed fan-out over meshes of thousands.
	DefaultHopLimit = 4
)

// Header field offsets (see "Frame header" in doc.go).
const (
	offMagic      = 0  // u16 Magic
	offVersion    = 2  // u8  Version
	offType       = 3  // u8  FrameType
	offFlags      = 4  // u8  Flags
	offHeaderLen  = 5  // u8  HeaderLen
	offHops       = 6  // u8  hops travelled (the only field a relay changes)
	offHopLimit   = 7  // u8  hop limit
	offCluster    = 8  // u64 ClusterHash
	offOrigin     = 16 // u64 origin node id
	offEpoch      = 24 // u64 origin boot epoch
	offSeq        = 32 // u64 sequence (meaning by type)
	offPacket     = 40 // u64 packet number (AEAD nonce source)
	offCount      = 48 // u16 records / digest entries / ranges
	offPayloadLen = 50 // u16 payload length (tag excluded)
	offReserved   = 52 // u32 zero
)

// FrameType says what a frame's payload carries.
type FrameType uint8

// Frame types.
const (
	TypeData      FrameType = 1  // batch of invalidation records
	TypeAlive     FrameType = 2  // heartbeat: sender addr, incarnation, hwm, member digest
	TypeLeave     FrameType = 3  // graceful leave
	TypeNack      FrameType = 4  // missing sequence ranges of one origin
	TypeHWM       FrameType = 5  // origin's current high-water data seq (header Seq)
	TypeAck       FrameType = 6  // a receiver's progress on one origin's stream (flow control)
	TypeJoin      FrameType = 7  // join handshake: from which seq a receiver is in an origin's fan-out
	TypeChallenge FrameType = 8  // address validation: a cookie to echo
	TypeResponse  FrameType = 9  // the echo of a CHALLENGE's cookie
	TypeProbe     FrameType = 10 // SWIM probe (ping, ping-req, ack, nack) with piggybacked updates
	TypeSync      FrameType = 11 // push-pull: part of a member table
	TypeIHave     FrameType = 12 // relay tree, lazy push: the highest seqs the sender holds, per origin
	TypeGraft     FrameType = 13 // relay tree: resend an origin's frames from a seq and push them to me
	TypePrune     FrameType = 14 // relay tree: stop pushing me an origin's frames

	typeLast = TypePrune // highest defined type
)

// known reports whether t is a frame type of this wire version.
func (t FrameType) known() bool {
	switch t {
	case TypeData, TypeAlive, TypeLeave, TypeNack, TypeHWM, TypeAck, TypeJoin, TypeChallenge, TypeResponse, TypeProbe, TypeSync,
		TypeIHave, TypeGraft, TypePrune:
		return true
	}
	return false
}

// String returns the type's name, e.g. "DATA", or "FrameType(9)".
func (t FrameType) String() string {
	switch t {
	case TypeData:
		return "DATA"
	case TypeAlive:
		return "ALIVE"
	case TypeLeave:
		return "LEAVE"
	case TypeNack:
		return "NACK"
	case TypeHWM:
		return "HWM"
	case TypeAck:
		return "ACK"
	case TypeJoin:
		return "JOIN"
	case TypeChallenge:
		return "CHALLENGE"
	case TypeResponse:
		return "RESPONSE"
	case TypeProbe:
		return "PROBE"
	case TypeSync:
		return "SYNC"
	case TypeIHave:
		return "IHAVE"
	case TypeGraft:
		return "GRAFT"
	case TypePrune:
		return "PRUNE"
	}
	return "FrameType(" + itoa(uint64(t)) + ")"
}

// Flags are the header's flag bits. Undefined bits must be zero.
type Flags uint8

// Header flags. Bits 3-7 are reserved: ParseHeader rejects them with
// ErrBadFlags. Whether a frame was relayed is derivable from Hops > 0.
const (
	FlagAuth       Flags = 1 << 0 // a TagLen-byte AEAD tag trails the payload
	FlagRetransmit Flags = 1 << 1 // DATA resent in answer to a NACK (DATA only)
	FlagPadded     Flags = 1 << 2 // zero bytes may follow the frame (GSO segments)
)

const knownFlags = FlagAuth | FlagRetransmit | FlagPadded

// Header is the decoded fixed frame header. See doc.go for what each
// field means per frame type.
type Header struct {
	Type       FrameType
	Flags      Flags
	Hops       uint8  // relay hops travelled so far; 0 at the origin
	HopLimit   uint8  // relays stop forwarding when Hops reaches HopLimit
	Cluster    uint64 // ClusterHash of the cluster name
	Origin     uint64 // origin node id
	Epoch      uint64 // origin boot epoch
	Seq        uint64 // DATA: data seq (from 1); HWM: high-water seq; others: sender's hwm by convention
	Packet     uint64 // per-(Origin,Epoch) packet number over every frame sent; AEAD nonce source
	Count      uint16 // DATA: records; ALIVE: digest entries; NACK: ranges; LEAVE, HWM: 0
	PayloadLen uint16 // payload bytes, tag excluded
}

// ClusterHash returns the 64-bit xxhash of a cluster name, carried in every
// header so that meshes sharing a network or multicast group never mix.
// It does not allocate.
func ClusterHash(name string) uint64 { return xxhash.Sum64String(name) }

// FrameLen returns the datagram length h describes: HeaderLen + PayloadLen,
// plus TagLen when FlagAuth is set.
func FrameLen(h *Header) int {
	n := HeaderLen + int(h.PayloadLen)
	if h.Flags&FlagAuth != 0 {
		n += TagLen
	}
	return n
}

var zeroHeader [HeaderLen]byte

// AppendHeader appends the HeaderLen-byte encoding of h to dst. It writes
// the fields as given (it does not validate them) and does not allocate
// when dst has HeaderLen bytes of spare capacity.
func AppendHeader(dst []byte, h *Header) []byte {
	start := len(dst)
	dst = append(dst, zeroHeader[:]...)
	b := dst[start:]
	binary.BigEndian.PutUint16(b[offMagic:], Magic)
	b[offVersion] = Version
	b[offType] = uint8(h.Type)
	b[offFlags] = uint8(h.Flags)
	b[offHeaderLen] = HeaderLen
	b[offHops] = h.Hops
	b[offHopLimit] = h.HopLimit
	binary.BigEndian.PutUint64(b[offCluster:], h.Cluster)
	binary.BigEndian.PutUint64(b[offOrigin:], h.Origin)
	binary.BigEndian.PutUint64(b[offEpoch:], h.Epoch)
	binary.BigEndian.PutUint64(b[offSeq:], h.Seq)
	binary.BigEndian.PutUint64(b[offPacket:], h.Packet)
	binary.BigEndian.PutUint16(b[offCount:], h.Count)
	binary.BigEndian.PutUint16(b[offPayloadLen:], h.PayloadLen)
	return dst
}

// ParseHeader decodes the header at the start of the datagram b and checks,
// in this order: length (ErrShort), magic, version, header length, type,
// flags, reserved bytes, size (ErrFrameTooLarge), and that len(b) is exactly
// FrameLen(&h) (ErrBadLength: truncated or trailing bytes), or, with
// FlagPadded, at least FrameLen(&h) followed by zeros. It does not look
// at the payload (see ValidatePayload) nor judge Hops against HopLimit or
// Seq (engine policy). On success n == HeaderLen. It does not allocate.
func ParseHeader(b []byte) (h Header, n int, err error) {
	if len(b) < HeaderLen {
		return Header{}, 0, ErrShort
	}
	if binary.BigEndian.Uint16(b[offMagic:]) != Magic {
		return Header{}, 0, ErrBadMagic
	}
	if b[offVersion] != Version {
		return Header{}, 0, ErrBadVersion
	}
	if b[offHeaderLen] != HeaderLen {
		return Header{}, 0, ErrBadHeaderLen
	}
	h.Type = FrameType(b[offType])
	if !h.Type.known() {
		return Header{}, 0, ErrBadType
	}
	h.Flags = Flags(b[offFlags])
	if h.Flags&^knownFlags != 0 || (h.Flags&FlagRetransmit != 0 && h.Type != TypeData) {
		return Header{}, 0, ErrBadFlags
	}
	if binary.BigEndian.Uint32(b[offReserved:]) != 0 {
		return Header{}, 0, ErrReserved
	}
	h.Hops = b[offHops]
	h.HopLimit = b[offHopLimit]
	h.Cluster = binary.BigEndian.Uint64(b[offCluster:])
	h.Origin = binary.BigEndian.Uint64(b[offOrigin:])
	h.Epoch = binary.BigEndian.Uint64(b[offEpoch:])
	h.Seq = binary.BigEndian.Uint64(b[offSeq:])
	h.Packet = binary.BigEndian.Uint64(b[offPacket:])
	h.Count = binary.BigEndian.Uint16(b[offCount:])
	h.PayloadLen = binary.BigEndian.Uint16(b[offPayloadLen:])
	total := FrameLen(&h)
	if total > MaxFrameSize {
		return Header{}, 0, ErrFrameTooLarge
	}
	if len(b) != total && (h.Flags&FlagPadded == 0 || len(b) < total || !zeros(b[total:])) {
		return Header{}, 0, ErrBadLength
	}
	return h, HeaderLen, nil
}

// zeros reports whether b holds only zero bytes.
func zeros(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// SetHops patches the hop count of an encoded frame in place; relays call
// it before forwarding. Hops is excluded from authentication (see
// HeaderAAD), so patching does not invalidate the tag. A frame shorter than
// HeaderLen is left untouched. It does not allocate.
func SetHops(frame []byte, hops uint8) {
	if len(frame) >= HeaderLen {
		frame[offHops] = hops
	}
}

// HeaderAAD copies the header of frame into dst with the hops byte zeroed:
// the associated data an AEAD authenticates. Hops is mutable in flight, every
// other header byte is covered. A frame shorter than HeaderLen leaves the
// missing bytes of dst zero. It does not allocate.
func HeaderAAD(dst *[HeaderLen]byte, frame []byte) {
	n := copy(dst[:], frame)
	clear(dst[n:])
	dst[offHops] = 0
}

// AppendAAD appends the associated data of frame (its header with the hops
// byte zeroed, see HeaderAAD) to dst. It does not allocate when dst has
// HeaderLen bytes of spare capacity.
func AppendAAD(dst, frame []byte) []byte {
	start := len(dst)
	dst = append(dst, zeroHeader[:]...)
	copy(dst[start:], frame)
	dst[start+offHops] = 0
	return dst
}

// ValidateFrameSize checks a frame size budget (an engine option):
// ErrFrameTooSmall below MinFrameSize, ErrFrameTooLarge above MaxFrameSize.
func ValidateFrameSize(n int) error {
	switch {
	case n < MinFrameSize:
		return ErrFrameTooSmall
	case n > MaxFrameSize:
		return ErrFrameTooLarge
	}
	return nil
}

// itoa formats v in decimal without fmt (String methods stay cheap).
func itoa(v uint64) string {
	var buf [20]byte
	i := len(buf)
	for {
		i--
		buf[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	return string(buf[i:])
}
