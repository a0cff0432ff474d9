package engine

import (
	"net/netip"
	"sort"
)

// Fan-out in meshes larger than DirectLimit follows a tree rooted at each
// frame's origin. Every node orders the live members (and itself) by id and
// places them on a ring starting at the origin: position p (0 = origin)
// forwards to positions p·F+1 … p·F+F. With consistent membership views
// every node receives each frame exactly once (redundancy 1) within
// ⌈log_F N⌉ hops. A receiver repairs a loss from its tree parent
// (treeParent; repair.go), not the origin. Where views disagree,
// duplicates are deduplicated and misses repaired, and Plumtree's lazy
// push heals the tree itself (plumtree.go): grafts add eager children,
// prunes remove redundant ones, until the view changes.

// treeChildren appends self's children in the relay tree of origin.
func treeChildren(v *destView, self, origin uint64, fanout int, dst []netip.AddrPort) []netip.AddrPort {
	ids := v.ids
	n := len(ids) + 1 // live members plus self
	index := func(id uint64) int {
		i := sort.Search(len(ids), func(i int) bool { return ids[i] >= id })
		if self < id {
			i++
		}
		return i
	}
	selfIdx := index(self)
	originIdx := selfIdx
	if origin != self {
		j := sort.Search(len(ids), func(i int) bool { return ids[i] >= origin })
		if j == len(ids) || ids[j] != origin {
			// Origin unknown here: fall back to the first Fanout members
			// after self, which still spreads the frame.
			for k := 1; k <= fanout && k < n; k++ {
				dst = append(dst, memberAt(v, selfIdx, (selfIdx+k)%n))
			}
			return dst
		}
		originIdx = index(origin)
	}
	p := (selfIdx - originIdx + n) % n
	for c := p*fanout + 1; c <= p*fanout+fanout && c < n; c++ {
		dst = append(dst, memberAt(v, selfIdx, (c+originIdx)%n))
	}
	return dst
}

// memberAt maps a ring index (which counts self at selfIdx) to an address.
func memberAt(v *destView, selfIdx, j int) netip.AddrPort {
	if j > selfIdx {
		j--
	}
	return v.live[j]
}

// treeParent returns self's parent in the relay tree of origin: the node
// that relays origin's frames to self when views agree. ok is false when
// that is the origin itself (or self is the origin, or the origin is not
// in the view, where the fallback spread of treeChildren has no parent):
// repair then asks the origin.
func treeParent(v *destView, self, origin uint64, fanout int) (netip.AddrPort, uint64, bool) {
	ids := v.ids
	n := len(ids) + 1
	if origin == self || n < 3 {
		return netip.AddrPort{}, 0, false
	}
	j := sort.Search(len(ids), func(i int) bool { return ids[i] >= origin })
	if j == len(ids) || ids[j] != origin {
		return netip.AddrPort{}, 0, false
	}
	selfIdx := sort.Search(len(ids), func(i int) bool { return ids[i] >= self })
	originIdx := j
	if self < origin {
		originIdx++
	}
	p := (selfIdx - originIdx + n) % n
	parent := (p - 1) / fanout
	if parent == 0 {
		return netip.AddrPort{}, 0, false
	}
	k := (parent + originIdx) % n
	if k > selfIdx {
		k--
	}
	return v.live[k], ids[k], true
}
