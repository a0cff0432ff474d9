package engine

import (
	"net/netip"

	"github.com/warpmesh/warpmesh/engine/internal/plumtree"
)

func plumtreePeer(a netip.AddrPort) plumtree.Peer { return plumtree.Peer{ID: 1, Addr: a} }

func plumtreeEntry(origin uint64) plumtree.Entry {
	return plumtree.Entry{Origin: origin, Epoch: 1, Seq: 1}
}
