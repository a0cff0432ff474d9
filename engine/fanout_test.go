package engine

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
)

// viewOf is the view node self has of a mesh whose members are ids (self
// included): every other member, in id order, at an address naming its id.
func viewOf(ids []uint64, self uint64) *destView {
	v := &destView{}
	for _, id := range ids {
		if id != self {
			v.ids = append(v.ids, id)
			v.live = append(v.live, netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(id >> 16), byte(id >> 8), byte(id)}), 1))
		}
	}
	return v
}

// TestTreeParentIsRelay: with consistent views, the parent treeParent
// names is exactly the node whose treeChildren include self, for every
// node and origin; the origin's own children have no parent but it.
func TestTreeParentIsRelay(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, size := range []int{3, 4, 9, 10, 40, 121} {
		for _, fanout := range []int{2, 3, 5} {
			ids := make([]uint64, size)
			for i := range ids {
				ids[i] = rng.Uint64() >> 40 // small, so the address encodes it
			}
			slices.Sort(ids)
			ids = slices.Compact(ids)
			views := make(map[uint64]*destView, len(ids))
			for _, id := range ids {
				views[id] = viewOf(ids, id)
			}
			for _, origin := range ids {
				relayOf := map[netip.AddrPort]uint64{} // child address → its relay
				for _, id := range ids {
					for _, c := range treeChildren(views[id], id, origin, fanout, nil) {
						if prev, dup := relayOf[c]; dup {
							t.Fatalf("size %d fanout %d origin %d: %v relayed by %d and %d", size, fanout, origin, c, prev, id)
						}
						relayOf[c] = id
					}
				}
				if len(relayOf) != len(ids)-1 {
					t.Fatalf("size %d fanout %d: tree reaches %d of %d", size, fanout, len(relayOf), len(ids)-1)
				}
				for _, id := range ids {
					if id == origin {
						if _, _, ok := treeParent(views[id], id, origin, fanout); ok {
							t.Fatal("the origin has a parent")
						}
						continue
					}
					self := viewOf([]uint64{id}, 0).live[0]
					relay := relayOf[self]
					addr, pid, ok := treeParent(views[id], id, origin, fanout)
					if !ok {
						if relay != origin {
							t.Fatalf("size %d fanout %d: %d has no parent but is relayed by %d, not the origin %d", size, fanout, id, relay, origin)
						}
						continue
					}
					if pid != relay || addr != views[id].live[slices.Index(views[id].ids, relay)] {
						t.Fatalf("size %d fanout %d origin %d: parent of %d is %d (%v), relay is %d", size, fanout, origin, id, pid, addr, relay)
					}
				}
			}
		}
	}
}

// TestTreeParentUnknownOrigin: an origin outside the view has no parent
// (repair asks the origin).
func TestTreeParentUnknownOrigin(t *testing.T) {
	v := viewOf([]uint64{1, 2, 3, 4, 5}, 3)
	if _, _, ok := treeParent(v, 3, 99, 2); ok {
		t.Fatal("parent for an unknown origin")
	}
}
