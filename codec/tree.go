package codec

import "encoding/binary"

// TreeEntryLen is the length of one entry of an IHAVE, GRAFT or PRUNE
// payload.
const TreeEntryLen = 24

// Tree entry offsets (see "IHAVE, GRAFT and PRUNE payload" in doc.go).
const (
	offTreeOrigin = 0  // u64 the origin whose DATA stream the entry is about
	offTreeEpoch  = 8  // u64 that origin's boot epoch
	offTreeSeq    = 16 // u64 IHAVE: every seq up to it held; GRAFT: first seq wanted; PRUNE: 0
)

// TreeEntry is one entry of the relay tree's repair and healing frames
// (Plumtree's lazy push): in an IHAVE, the sequence of an origin's epoch
// up to which the sender holds every frame (0: none yet, in a relay's
// answer to a tree child's NACK for frames it misses too); in a GRAFT,
// the first sequence the sender wants resent, and a request to be pushed
// that origin's frames from now on (Seq >= 1); in a PRUNE, a request to
// stop (Seq == 0).
type TreeEntry struct {
	Origin, Epoch, Seq uint64
}

// MaxTreeEntries returns how many entries an IHAVE, GRAFT or PRUNE frame
// holds within a frameSize budget (with a tag reserved when auth is set).
func MaxTreeEntries(frameSize int, auth bool) int {
	room := min(frameSize, MaxFrameSize) - HeaderLen
	if auth {
		room -= TagLen
	}
	return max(room/TreeEntryLen, 0)
}

// AppendTreeEntry appends the TreeEntryLen-byte encoding of e. It does not
// allocate when dst has the room.
func AppendTreeEntry(dst []byte, e *TreeEntry) []byte {
	dst = binary.BigEndian.AppendUint64(dst, e.Origin)
	dst = binary.BigEndian.AppendUint64(dst, e.Epoch)
	return binary.BigEndian.AppendUint64(dst, e.Seq)
}

// ParseTreeEntry decodes the entry at the start of b; n == TreeEntryLen.
// Errors: ErrShort. Whether Seq suits the frame type is checked by
// ValidatePayload (ErrBadTree). It does not allocate.
func ParseTreeEntry(b []byte) (e TreeEntry, n int, err error) {
	if len(b) < TreeEntryLen {
		return TreeEntry{}, 0, ErrShort
	}
	e.Origin = binary.BigEndian.Uint64(b[offTreeOrigin:])
	e.Epoch = binary.BigEndian.Uint64(b[offTreeEpoch:])
	e.Seq = binary.BigEndian.Uint64(b[offTreeSeq:])
	return e, TreeEntryLen, nil
}

// validateTree checks an IHAVE, GRAFT or PRUNE payload: exactly count >= 1
// entries, each with a sequence (GRAFT), none (PRUNE) or either (IHAVE).
func validateTree(t FrameType, payload []byte, count int) error {
	if count == 0 {
		return ErrBadTree
	}
	if err := exactEntries(payload, count, TreeEntryLen); err != nil {
		return err
	}
	for b := payload; len(b) > 0; b = b[TreeEntryLen:] {
		e, _, _ := ParseTreeEntry(b)
		if t != TypeIHave && (t == TypePrune) != (e.Seq == 0) {
			return ErrBadTree
		}
	}
	return nil
}
