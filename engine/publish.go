package engine

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"time"
	"unsafe"

	"github.com/warpmesh/warpmesh/codec"
	"github.com/warpmesh/warpmesh/internal/allocprobe"
	"github.com/warpmesh/warpmesh/ringbuf"
	"github.com/warpmesh/warpmesh/sockopt"
)

// ErrBackpressure is returned by TryPublish when the publish ring is full:
// the sender loop is behind and nothing was queued.
var ErrBackpressure = errors.New("engine: publish ring full")

// Publishing. Every method copies the key into the publish ring and returns;
// none allocates. Invalidate, InvalidateBytes and InvalidatePrefix block
// while the ring is full (the sender loop frees it at network speed) and
// return ErrClosed once the node is closed; Publish bounds that wait with a
// context and TryPublish never waits.

// Invalidate invalidates key on every other member.
func (n *Node) Invalidate(key string) error {
	return n.Publish(context.Background(), stringBytes(key), false)
}

// InvalidateBytes is Invalidate for a []byte key; key is copied.
func (n *Node) InvalidateBytes(key []byte) error {
	return n.Publish(context.Background(), key, false)
}

// InvalidatePrefix invalidates, on every other member, every key that
// starts with prefix.
func (n *Node) InvalidatePrefix(prefix string) error {
	return n.Publish(context.Background(), stringBytes(prefix), true)
}

// Publish queues an invalidation of key (of every key starting with key
// when prefix is set), waiting while the publish ring is full until ctx is
// done. It returns a codec key error for an empty or over-long key,
// ErrClosed after Close, or ctx.Err().
func (n *Node) Publish(ctx context.Context, key []byte, prefix bool) error {
	if err := codec.ValidateKey(key); err != nil {
		return err
	}
	err := n.pub.Write(ctx, recordKind(prefix), key)
	return n.publishResult(err)
}

// TryPublish is Publish without waiting: it returns ErrBackpressure when the
// publish ring is full.
func (n *Node) TryPublish(key []byte, prefix bool) error {
	if err := codec.ValidateKey(key); err != nil {
		return err
	}
	err := n.pub.TryWrite(recordKind(prefix), key)
	if errors.Is(err, ringbuf.ErrFull) {
		return ErrBackpressure
	}
	return n.publishResult(err)
}

// DeclareLoss tells every member that invalidations this node should have
// published may have been lost (a bridge uses it when its link to another
// mesh fails). The node skips one data sequence number, which no member can
// ever receive or have repaired, so every member raises a Gap event for
// this origin (GapEvicted) and presets flush. Invalidations published
// before DeclareLoss are sent first. It waits while the publish ring is
// full and returns ErrClosed after Close. Does not allocate.
func (n *Node) DeclareLoss() error {
	err := n.pub.Write(context.Background(), kindSkip, nil)
	if errors.Is(err, ringbuf.ErrClosed) {
		return ErrClosed
	}
	return err
}

// kindSkip is a publish-ring record with no key: the sender ends its open
// frame and skips one data sequence (DeclareLoss).
const kindSkip = 0xff

func (n *Node) publishResult(err error) error {
	switch {
	case err == nil:
		n.ctr.published.Add(1)
		return nil
	case errors.Is(err, ringbuf.ErrClosed):
		return ErrClosed
	}
	return err
}

func recordKind(prefix bool) uint8 {
	if prefix {
		return uint8(codec.RecordPrefix)
	}
	return uint8(codec.RecordExact)
}

// stringBytes views s as bytes without copying; the ring copies them.
func stringBytes(s string) []byte {
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

// sender is the publish loop's state: it drains the publish ring, packs
// records into frames and writes (frame × destination) batches. Owned by
// one goroutine; allocated once.
type sender struct {
	n       *Node
	fb      codec.FrameBuilder
	open    bool                    // fb holds an unfinished frame
	big     []byte                  // backing store of slab
	slab    [][]byte                // frame buffers, MaxFrameSize each, contiguous in big
	gso     interface{ GSO() bool } // the transport, when it can send GSO
	frames  [][]byte                // finished frames awaiting flush (views into slab)
	hdrs    []codec.Header          // headers of frames, parallel
	hdr     codec.Header            // header of the open frame
	msgs    []sockopt.Message
	dests   []netip.AddrPort
	seq     uint64
	skipped bool // a DeclareLoss sequence not yet announced
	packFn  func(kind uint8, rec []byte)
	readMax int
	timer   *time.Timer // flow-control waits
	sc      sealScratch
}

const senderSlab = 64 // frames packed per flush at most

func (s *sender) init(n *Node) error {
	s.n = n
	// One contiguous slab with a stride of MaxFrameSize: consecutive
	// frames padded to the stride are one GSO buffer as they lie.
	m := n.cfg.MaxFrameSize
	s.big = make([]byte, senderSlab*m)
	s.slab = make([][]byte, senderSlab)
	for i := range s.slab {
		s.slab[i] = s.big[i*m : i*m : (i+1)*m]
	}
	if g, ok := n.uni.(interface{ GSO() bool }); ok && g.GSO() && !n.cfg.DisableGSO {
		s.gso = g
	}
	s.frames = make([][]byte, 0, senderSlab)
	s.hdrs = make([]codec.Header, 0, senderSlab)
	s.msgs = make([]sockopt.Message, n.cfg.BatchSize)
	s.dests = make([]netip.AddrPort, 0, 64)
	s.packFn = s.pack
	s.readMax = 4096
	s.timer = time.NewTimer(time.Hour)
	s.timer.Stop()
	return nil
}

func (s *sender) run() {
	defer s.n.senderWG.Done()
	for {
		if err := s.n.pub.Wait(context.Background()); err != nil {
			return // closed and drained
		}
		for s.n.pub.Read(s.readMax, s.packFn) > 0 {
		}
		s.finish()
		s.flush()
		if s.skipped {
			// A skipped sequence at the end of the stream: announce it,
			// so members notice the hole without waiting for more data.
			s.skipped = false
			if s.n.hwm.Load() < s.seq {
				s.n.hwm.Store(s.seq)
				s.n.timers.lastData.Store(time.Now().UnixNano())
				s.n.timers.kick()
			}
		}
	}
}

// pack adds one record to the open frame, starting a new frame when it is
// full and flushing when the slab is used up.
func (s *sender) pack(kind uint8, rec []byte) {
	if kind == kindSkip {
		s.finish()
		s.seq++ // never sent, never in the retransmit ring: a Gap everywhere
		s.skipped = true
		return
	}
	if !s.open {
		s.start()
	}
	if !s.fb.Add(rec, codec.RecordFlags(kind)) {
		s.finish()
		s.start()
		s.fb.Add(rec, codec.RecordFlags(kind)) // always fits an empty frame
	}
	if s.n.cfg.EchoLocal {
		s.n.apply(rec, codec.RecordFlags(kind) == codec.RecordPrefix, s.n.id, s.n.epoch, s.seq)
	}
}

func (s *sender) start() {
	allocprobe.Hit(allocprobe.SenderFrame) // tests only: proves the allocation gates see this path
	if len(s.frames) == len(s.slab) {
		s.flush()
	}
	s.seq++
	h := codec.Header{
		Type:     codec.TypeData,
		HopLimit: uint8(s.n.cfg.HopLimit),
		Cluster:  s.n.cfg.cluster,
		Origin:   s.n.id,
		Epoch:    s.n.epoch,
		Seq:      s.seq,
		Packet:   s.n.packet.Add(1),
	}
	if s.n.sealing() {
		h.Flags |= codec.FlagAuth
	}
	if s.gso != nil {
		h.Flags |= codec.FlagPadded
	}
	s.hdr = h
	s.fb.Reset(s.slab[len(s.frames)][:0], h, s.n.cfg.MaxFrameSize)
	s.open = true
}

func (s *sender) finish() {
	if !s.open {
		return
	}
	s.open = false
	if s.fb.Count() == 0 {
		s.seq--
		return
	}
	s.n.ctr.recordsSent.Add(uint64(s.fb.Count()))
	s.hdr.Count = uint16(s.fb.Count())
	f := s.fb.Finish()
	s.hdr.PayloadLen = uint16(len(f) - codec.HeaderLen)
	s.frames = append(s.frames, f)
	s.hdrs = append(s.hdrs, s.hdr)
}

// flush writes every finished frame to its destinations.
func (s *sender) flush() {
	if len(s.frames) == 0 {
		return
	}
	if s.n.aborted.Load() {
		s.frames, s.hdrs = s.frames[:0], s.hdrs[:0]
		return
	}
	// Keep the plaintext for retransmission, then seal in place.
	s.n.retrans.put(s.hdrs, s.frames)
	for i := range s.frames {
		s.frames[i] = s.n.sealFrame(s.frames[i], &s.hdrs[i], &s.sc)
	}
	s.n.ctr.sendBatches.Add(1)
	v := s.n.joins.adopt(s.n.members, &s.n.flow, s.hdrs[0].Seq, s.hdrs[len(s.hdrs)-1].Seq)
	s.awaitWindow(v, s.hdrs[len(s.hdrs)-1].Seq)
	s.dests = s.n.destinations(v, s.n.id, s.dests[:0])
	k := 0
	sent := s.frames
	if len(s.frames) > 1 && s.gso != nil && s.gso.GSO() {
		// Pad every frame but the last to the stride: the run is then one
		// buffer of equal segments, sent to each destination with one
		// GSO message (the kernel splits it into datagrams).
		m := s.n.cfg.MaxFrameSize
		last := len(s.frames) - 1
		for _, f := range s.frames[:last] {
			clear(f[len(f):m])
		}
		run := s.big[:last*m+len(s.frames[last])]
		for _, d := range s.dests {
			s.msgs[k] = sockopt.Message{Buf: run, Addr: d, SegSize: m}
			k++
			if k == len(s.msgs) {
				s.n.write(s.msgs[:k])
				k = 0
			}
		}
		sent = nil // skip the per-frame loop
	}
	for _, f := range sent {
		for _, d := range s.dests {
			s.msgs[k] = sockopt.Message{Buf: f, Addr: d}
			k++
			if k == len(s.msgs) {
				s.n.write(s.msgs[:k])
				k = 0
			}
		}
	}
	if k > 0 {
		s.n.write(s.msgs[:k])
	}
	// Announce only what has left: a high-water mark ahead of the frames
	// would look like a gap.
	s.n.hwm.Store(s.hdrs[len(s.hdrs)-1].Seq)
	s.n.timers.lastData.Store(time.Now().UnixNano())
	s.n.timers.kick()
	s.frames, s.hdrs = s.frames[:0], s.hdrs[:0]
}

// destinations picks where a frame from origin goes next, from this node:
// the group when every member hears it, every member in a small mesh, or
// this node's children in the origin-rooted relay tree in a large one.
func (n *Node) destinations(v *destView, origin uint64, dst []netip.AddrPort) []netip.AddrPort {
	switch {
	case len(v.live) == 0:
		return dst
	case len(v.live) <= n.cfg.DirectLimit:
		if origin != n.id {
			return dst // the origin reached everyone itself
		}
		if n.group.IsValid() && v.allMulticast {
			return append(dst, n.group)
		}
		return append(dst, v.live...)
	default:
		return treeChildren(v, n.id, origin, n.cfg.Fanout, dst)
	}
}

// writeBatched sends msgs in batches of at most BatchSize (write).
func (n *Node) writeBatched(msgs []sockopt.Message) {
	for len(msgs) > 0 {
		k := min(len(msgs), n.cfg.BatchSize)
		n.write(msgs[:k])
		msgs = msgs[k:]
	}
}

// write sends a batch and keeps the counters. Errors are counted and
// logged at a bounded rate; UDP is best effort and loss is repaired above.
func (n *Node) write(msgs []sockopt.Message) {
	for len(msgs) > 0 {
		sent, err := n.uni.WriteBatch(msgs)
		var bytes, datagrams uint64
		for i := 0; i < sent; i++ {
			m := &msgs[i]
			bytes += uint64(len(m.Buf))
			datagrams++
			if m.SegSize > 0 && len(m.Buf) > m.SegSize {
				datagrams += uint64((len(m.Buf)+m.SegSize-1)/m.SegSize) - 1
			}
		}
		n.ctr.framesSent.Add(datagrams)
		n.ctr.bytesSent.Add(bytes)
		if sent >= len(msgs) {
			return
		}
		if err == nil { // short write without an error: send the rest
			msgs = msgs[sent:]
			continue
		}
		if n.closed.Load() && errors.Is(err, net.ErrClosed) {
			return
		}
		var me *sockopt.MessageError
		if sent == 0 && errors.As(err, &me) && me.Index > 0 && me.Index < len(msgs) {
			// One destination the socket cannot send to (another address
			// family) refused the whole batch: send what precedes it, then
			// skip it alone.
			n.write(msgs[:me.Index])
			sent = me.Index
		}
		// Skip the datagram the kernel refused and go on with the rest.
		n.ctr.sendErrors.Add(1)
		if n.lim.allow() {
			n.log.Warn("warpmesh: send failed", "err", err, "to", msgs[sent].Addr)
		}
		if errors.Is(err, net.ErrClosed) {
			return
		}
		msgs = msgs[sent+1:]
	}
}
