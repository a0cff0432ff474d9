package bridge

import (
	"encoding/binary"
	"errors"

	"github.com/warpmesh/warpmesh/codec"
)

// The batch format: what one NATS message carries. Big-endian, like the
// mesh's own wire format.
//
// Batch header (fixed part, then the mesh name):
//
//	 0               1               2               3
//	+---------------+---------------+---------------+---------------+
//	|          magic "WB"           |    version    |     flags     |  0
//	+---------------+---------------+---------------+---------------+
//	|                 bridge id (u64): the exporting bridge         |  4
//	|                                                               |
//	+---------------------------------------------------------------+
//	|                 stream epoch (u64): the bridge's boot epoch   | 12
//	|                                                               |
//	+---------------------------------------------------------------+
//	|                 batch sequence (u64), 1, 2, … per stream      | 20
//	|                                                               |
//	+---------------+---------------+---------------+---------------+
//	|        group count (u16)      | mesh name len |  mesh name …  | 28
//	+---------------+---------------+---------------+---------------+
//
// Then group count groups. A group is a run of records that one mesh frame
// carried, in order; First is the index of its first record in that frame
// (an exporter may split a frame's records over two batches):
//
//	+---------------------------------------------------------------+
//	|                 origin (u64): the mesh node that published    |  0
//	+---------------------------------------------------------------+
//	|                 epoch (u64): the origin's boot epoch          |  8
//	+---------------------------------------------------------------+
//	|                 seq (u64): the origin's frame sequence        | 16
//	+---------------+---------------+---------------+---------------+
//	|        first (u16)            |        count (u16), ≥ 1       | 24
//	+---------------+---------------+---------------+---------------+
//
// Then count records:
//
//	+---------------+---------------+-----------------------------+
//	| P |   key length (15 bits)    |  key (1..MaxKeyLen bytes) … |
//	+---------------+---------------+-----------------------------+
//
// P (the top bit) marks a prefix invalidation. Nothing may follow the last
// group. A stream is (mesh, bridge id, stream epoch): its batch sequence
// grows by one per message, so the receiving bridge notices a lost message.
const (
	// BatchMagic opens every batch: "WB".
	BatchMagic uint16 = 0x5742
	// BatchVersion is the batch format version this package reads and
	// writes.
	BatchVersion uint8 = 1
	// MaxMeshName is the longest mesh name a batch carries.
	MaxMeshName = 64
	// MaxKeyLen is the longest key, the mesh's own limit.
	MaxKeyLen = codec.MaxKeyLen

	offMagic    = 0  // u16 BatchMagic
	offVersion  = 2  // u8  BatchVersion
	offFlags    = 3  // u8  BatchFlags
	offBridge   = 4  // u64 bridge id
	offStream   = 12 // u64 stream epoch
	offBatchSeq = 20 // u64 batch sequence
	offGroups   = 28 // u16 group count
	offMeshLen  = 30 // u8  mesh name length
	offMesh     = 31 // mesh name
	// BatchHeaderMin is the header length with an empty mesh name.
	BatchHeaderMin = offMesh

	offGroupOrigin = 0  // u64
	offGroupEpoch  = 8  // u64
	offGroupSeq    = 16 // u64
	offGroupFirst  = 24 // u16
	offGroupCount  = 26 // u16
	// GroupHeaderLen is the length of a group's header.
	GroupHeaderLen = 28

	// RecordHeaderLen is the length prefix of each record.
	RecordHeaderLen = 2
	recordPrefixBit = 0x8000
	recordLenMask   = 0x7fff
)

// BatchFlags qualify a whole batch.
type BatchFlags uint8

// Batch flags.
const (
	// FlagLoss: the exporter may have missed invalidations of its mesh
	// since its previous batch (a Gap in its mesh, a full export queue, a
	// lost NATS connection). The receiving bridge flushes its mesh.
	FlagLoss BatchFlags = 1 << 0
	// FlagBye: the exporter is closing; this is its stream's last batch.
	FlagBye BatchFlags = 1 << 1
	// FlagPresence: a presence beacon on the presence subject (no groups).
	FlagPresence BatchFlags = 1 << 2

	knownFlags = FlagLoss | FlagBye | FlagPresence
)

// Batch parse errors. Each is one drop reason.
var (
	ErrShort      = errors.New("bridge: batch shorter than its header")
	ErrBadMagic   = errors.New("bridge: not a batch (bad magic)")
	ErrBadVersion = errors.New("bridge: unknown batch version")
	ErrMalformed  = errors.New("bridge: malformed batch")
)

// BatchHeader is a parsed batch header. Mesh is a view into the message.
type BatchHeader struct {
	Flags  BatchFlags
	Bridge uint64 // exporting bridge's node id
	Stream uint64 // stream epoch (the exporter's boot epoch)
	Seq    uint64 // batch sequence within the stream, from 1
	Groups int
	Mesh   []byte
}

// Group is a parsed group header.
type Group struct {
	Origin, Epoch, Seq uint64
	First, Count       uint16
}

// BatchHeaderLen returns the header length for a mesh name of meshLen
// bytes.
func BatchHeaderLen(meshLen int) int { return offMesh + meshLen }

// AppendBatchHeader appends a header with zero groups to dst. The caller
// checks the mesh name (ValidMeshName). Does not allocate when dst has room.
func AppendBatchHeader(dst []byte, h *BatchHeader) []byte {
	dst = binary.BigEndian.AppendUint16(dst, BatchMagic)
	dst = append(dst, BatchVersion, byte(h.Flags))
	dst = binary.BigEndian.AppendUint64(dst, h.Bridge)
	dst = binary.BigEndian.AppendUint64(dst, h.Stream)
	dst = binary.BigEndian.AppendUint64(dst, h.Seq)
	dst = binary.BigEndian.AppendUint16(dst, uint16(h.Groups))
	dst = append(dst, byte(len(h.Mesh)))
	return append(dst, h.Mesh...)
}

// setBatchSeq, setBatchFlags and setBatchGroups patch a header in place.
func setBatchSeq(b []byte, seq uint64)     { binary.BigEndian.PutUint64(b[offBatchSeq:], seq) }
func setBatchFlags(b []byte, f BatchFlags) { b[offFlags] = byte(f) }
func setBatchGroups(b []byte, n int)       { binary.BigEndian.PutUint16(b[offGroups:], uint16(n)) }
func setGroupCount(b []byte, at, n int)    { binary.BigEndian.PutUint16(b[at+offGroupCount:], uint16(n)) }
func appendGroupHeader(dst []byte, g *Group) []byte {
	dst = binary.BigEndian.AppendUint64(dst, g.Origin)
	dst = binary.BigEndian.AppendUint64(dst, g.Epoch)
	dst = binary.BigEndian.AppendUint64(dst, g.Seq)
	dst = binary.BigEndian.AppendUint16(dst, g.First)
	return binary.BigEndian.AppendUint16(dst, g.Count)
}

// appendRecord appends one record; the caller has checked the key length.
func appendRecord(dst, key []byte, prefix bool) []byte {
	v := uint16(len(key))
	if prefix {
		v |= recordPrefixBit
	}
	dst = binary.BigEndian.AppendUint16(dst, v)
	return append(dst, key...)
}

// ParseBatchHeader parses the header at the start of b and returns it with
// its length. It checks magic, version, flags and the mesh name's length
// and syntax, not the groups. Does not allocate.
func ParseBatchHeader(b []byte) (h BatchHeader, n int, err error) {
	if len(b) < BatchHeaderMin {
		return h, 0, ErrShort
	}
	if binary.BigEndian.Uint16(b[offMagic:]) != BatchMagic {
		return h, 0, ErrBadMagic
	}
	if b[offVersion] != BatchVersion {
		return h, 0, ErrBadVersion
	}
	h.Flags = BatchFlags(b[offFlags])
	if h.Flags&^knownFlags != 0 {
		return h, 0, ErrMalformed
	}
	h.Bridge = binary.BigEndian.Uint64(b[offBridge:])
	h.Stream = binary.BigEndian.Uint64(b[offStream:])
	h.Seq = binary.BigEndian.Uint64(b[offBatchSeq:])
	h.Groups = int(binary.BigEndian.Uint16(b[offGroups:]))
	ml := int(b[offMeshLen])
	if len(b) < offMesh+ml {
		return h, 0, ErrShort
	}
	h.Mesh = b[offMesh : offMesh+ml : offMesh+ml]
	if !validMeshName(h.Mesh) || h.Seq == 0 || h.Bridge == 0 {
		return h, 0, ErrMalformed
	}
	return h, offMesh + ml, nil
}

// ParseGroup parses a group header at the start of b. Does not allocate.
func ParseGroup(b []byte) (g Group, n int, err error) {
	if len(b) < GroupHeaderLen {
		return g, 0, ErrMalformed
	}
	g.Origin = binary.BigEndian.Uint64(b[offGroupOrigin:])
	g.Epoch = binary.BigEndian.Uint64(b[offGroupEpoch:])
	g.Seq = binary.BigEndian.Uint64(b[offGroupSeq:])
	g.First = binary.BigEndian.Uint16(b[offGroupFirst:])
	g.Count = binary.BigEndian.Uint16(b[offGroupCount:])
	if g.Count == 0 || g.Origin == 0 || int(g.First)+int(g.Count) > 1<<16 {
		return g, 0, ErrMalformed
	}
	return g, GroupHeaderLen, nil
}

// ParseRecord parses one record at the start of b. key is a view into b.
// Does not allocate.
func ParseRecord(b []byte) (key []byte, prefix bool, n int, err error) {
	if len(b) < RecordHeaderLen {
		return nil, false, 0, ErrMalformed
	}
	v := binary.BigEndian.Uint16(b)
	kl := int(v & recordLenMask)
	if kl == 0 || kl > MaxKeyLen || len(b) < RecordHeaderLen+kl {
		return nil, false, 0, ErrMalformed
	}
	n = RecordHeaderLen + kl
	return b[RecordHeaderLen:n:n], v&recordPrefixBit != 0, n, nil
}

// ValidateBatch checks a whole batch — header, every group and record, and
// that nothing trails the last group — and returns its header and the
// offset of the first group. A batch that passes can be walked with
// ParseGroup and ParseRecord without further errors. Does not allocate.
func ValidateBatch(b []byte) (h BatchHeader, body int, err error) {
	h, off, err := ParseBatchHeader(b)
	if err != nil {
		return h, 0, err
	}
	if h.Flags&FlagPresence != 0 && h.Groups != 0 {
		return h, 0, ErrMalformed
	}
	body = off
	for range h.Groups {
		g, n, err := ParseGroup(b[off:])
		if err != nil {
			return h, 0, err
		}
		off += n
		for range g.Count {
			_, _, n, err := ParseRecord(b[off:])
			if err != nil {
				return h, 0, err
			}
			off += n
		}
	}
	if off != len(b) {
		return h, 0, ErrMalformed
	}
	return h, body, nil
}

// ValidMeshName reports whether name can name a mesh on NATS: 1 to
// MaxMeshName bytes of letters, digits, '-' and '_' (one subject token).
func ValidMeshName(name string) bool { return validMeshName([]byte(name)) }

func validMeshName(b []byte) bool {
	if len(b) == 0 || len(b) > MaxMeshName {
		return false
	}
	for _, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}
