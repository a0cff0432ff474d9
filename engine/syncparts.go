package engine

import (
	"net/netip"

	"github.com/warpmesh/warpmesh/codec"
	"github.com/warpmesh/warpmesh/sockopt"
)

// syncPer is how many entries of entryLen bytes one SYNC frame holds (a
// tag's room kept whether or not the node seals).
func (n *Node) syncPer(entryLen int) int {
	return max((n.cfg.MaxFrameSize-codec.HeaderLen-codec.SyncFixedLen-codec.TagLen)/entryLen, 1)
}

// syncParts builds one half of a SYNC exchange of the given kind: count
// entries of entryLen bytes each, as many to a frame as fit, part 0
// first, entry i appended by put (one part with no entries when count is
// 0). The frames are built in *bufs (grown once per size reached) and
// sealed with sc; it returns msgs[:0] with one message per part to to.
// It allocates only when *bufs grows.
func (n *Node) syncParts(kind codec.SyncKind, count, entryLen int, put func(b []byte, i int) []byte,
	bufs *[][]byte, msgs []sockopt.Message, sc *sealScratch, to netip.AddrPort) []sockopt.Message {
	per := n.syncPer(entryLen)
	parts := max((count+per-1)/per, 1)
	for len(*bufs) < parts {
		*bufs = append(*bufs, make([]byte, 0, n.cfg.MaxFrameSize)) // once per exchange size reached
	}
	msgs = msgs[:0]
	for i := 0; i < parts; i++ {
		first, last := min(i*per, count), min((i+1)*per, count)
		hdr := n.controlHeader(codec.TypeSync)
		hdr.Count = uint16(last - first)
		hdr.PayloadLen = uint16(codec.SyncFixedLen + (last-first)*entryLen)
		b := codec.AppendHeader((*bufs)[i][:0], &hdr)
		b = codec.AppendSync(b, &codec.Sync{Kind: kind, Part: uint16(i), Parts: uint16(parts)})
		for k := first; k < last; k++ {
			b = put(b, k)
		}
		b = n.sealFrame(b, &hdr, sc)
		(*bufs)[i] = b
		msgs = append(msgs, sockopt.Message{Buf: b, Addr: to})
	}
	return msgs
}
