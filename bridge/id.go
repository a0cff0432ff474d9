package bridge

import (
	"crypto/rand"
	"encoding/binary"
)

// Bridges recognise each other's imports by node id. Every invalidation a
// bridge publishes into its mesh has the bridge's node as its origin, and a
// bridge's node id carries a fixed tag in its top 32 bits ("WMBR"). A
// bridge never exports an invalidation whose origin carries the tag, so
// nothing a bridge imported — by itself or by another bridge of the same
// mesh — goes back out. The tag needs no coordination and has no startup
// race (a bridge that has just joined recognises a sibling's imports from
// the first one). An ordinary node draws its id at random: the chance that
// one carries the tag, and so is not exported, is 2^-32 per node; an
// application that sets engine.Options.NodeID must not use the tag.
const (
	// BridgeIDTag is the top 32 bits of every bridge's node id.
	BridgeIDTag  uint64 = 0x574D4252 << 32
	bridgeIDMask        = 0xFFFFFFFF << 32
)

// IsBridgeID reports whether id is a bridge's node id.
func IsBridgeID(id uint64) bool { return id&bridgeIDMask == BridgeIDTag }

// NewBridgeID returns a random bridge node id (the tag and 32 random,
// non-zero bits).
func NewBridgeID() uint64 {
	var b [4]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			panic("bridge: crypto/rand failed: " + err.Error()) // never happens on supported platforms
		}
		if low := binary.BigEndian.Uint32(b[:]); low != 0 {
			return BridgeIDTag | uint64(low)
		}
	}
}
