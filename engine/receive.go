package engine

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/warpmesh/warpmesh/codec"
	"github.com/warpmesh/warpmesh/engine/internal/stream"
	"github.com/warpmesh/warpmesh/internal/allocprobe"
	"github.com/warpmesh/warpmesh/ringbuf"
	"github.com/warpmesh/warpmesh/sockopt"
)

// The receive path: each socket has a reader goroutine that fills
// preallocated batches with recvmmsg and hands them, whole, through an MPSC
// ring to one worker. The worker parses, deduplicates, applies and relays,
// then returns the batch to its reader's free ring. Buffers never move;
// only batch indices do.

const rxBatchesPerReader = 8

type rxBatch struct {
	msgs []sockopt.Message
	n    int
}

type rxReader struct {
	t        Transport
	viaGroup bool
	batches  []rxBatch
	free     *ringbuf.SPSC[uint16]
}

// rxRef names a filled batch: which reader, which slot.
type rxRef struct {
	reader uint8
	slot   uint16
}

// receiver holds the receive path's state. mu guards everything the
// frame handlers touch; it is taken by whichever goroutine processes a
// batch (a reader inline, or the worker) and by the repair timer, and is
// uncontended in the common case.
type receiver struct {
	mu      sync.Mutex
	n       *Node
	readers []*rxReader
	full    *ringbuf.MPSC[rxRef]
	refs    []rxRef
	origins map[uint64]*originState
	dedup   *bloom
	relay   relayQueue
	ring    relayRing // frames relayed, for tree children's NACKs (repair.go)
	tree    treeState // Plumtree's lazy push in relay trees (plumtree.go)
	dests   []netip.AddrPort

	open     *opener        // nil without a keyring
	acks     []*originState // origins whose progress this batch may report
	ackBuf   []byte
	ackMsg   [1]sockopt.Message
	sc       sealScratch // for frames the worker seals
	barriers uint64      // handler unregistrations waited for
	born     time.Time
	pending  []*originState
	ranges   []codec.SeqRange
	unavail  []codec.SeqRange
	ctrlBuf  []byte
	ctrlMsg  [1]sockopt.Message
	rtSlab   [][]byte
	rtMsgs   []sockopt.Message
	bucket   tokenBucket
	join     readiness
	// Marks answers (marks.go): entries, frames and their budget.
	marksOut    []codec.TreeEntry
	marksBufs   [][]byte
	marksMsgs   []sockopt.Message
	marksBudget tokenBucket
	lostList    []*originState // origins that gave sequences up since the last flush (one Gap each)
	watch       gapWatch       // Gap events raised and the next repair deadline, for readers (stream.go)
	params      stream.Params
	missing     []stream.SeqRange

	later       []*originState // origins with a held high-water mark (announceLater)
	strangers   []uint64       // ids of stranger states, oldest first (see stateFor)
	lastReclaim time.Time
}

func (r *receiver) init(n *Node) error {
	r.n = n
	r.origins = make(map[uint64]*originState)
	r.born = time.Now()
	r.join.asked = make(map[uint64]joinAsk)
	r.join.marksTurn = int(n.id >> 33) // joiners started together ask different members for marks
	r.join.buf = make([]byte, 0, codec.HeaderLen+codec.JoinLen+codec.TagLen)
	r.dedup = newBloom()
	r.relay.init(n)
	r.ring.frameSize = n.cfg.MaxFrameSize
	r.tree.init(n.cfg.MaxFrameSize, n.id, n.cfg.Fanout)
	r.dests = make([]netip.AddrPort, 0, 64)
	if n.cfg.Keyring != nil {
		r.open = &opener{ring: n.cfg.Keyring, cache: make(map[[2]uint64]*openKeys), scratch: make([]byte, 0, codec.MaxFrameSize)}
	}
	r.ranges = make([]codec.SeqRange, 0, codec.MaxNackRanges(codec.MaxFrameSize, false))
	r.missing = make([]stream.SeqRange, 0, cap(r.ranges))
	r.unavail = make([]codec.SeqRange, 0, cap(r.ranges))
	r.ctrlBuf = make([]byte, 0, n.cfg.MaxFrameSize)
	r.ackBuf = make([]byte, 0, codec.HeaderLen+codec.AckLen+codec.TagLen)
	r.acks = make([]*originState, 0, 64)
	r.rtSlab = make([][]byte, 64)
	for i := range r.rtSlab {
		r.rtSlab[i] = make([]byte, 0, n.cfg.MaxFrameSize)
	}
	r.rtMsgs = make([]sockopt.Message, len(r.rtSlab))
	r.bucket = tokenBucket{rate: float64(n.cfg.RetransmitRate), burst: float64(max(n.cfg.RetransmitRate/20, 64))}
	r.marksBudget = tokenBucket{rate: marksFramesPerS, burst: marksFramesPerS}
	add := func(t Transport, viaGroup bool) error {
		free, err := ringbuf.NewSPSC[uint16](rxBatchesPerReader)
		if err != nil {
			return err
		}
		rd := &rxReader{t: t, viaGroup: viaGroup, free: free, batches: make([]rxBatch, rxBatchesPerReader)}
		for i := range rd.batches {
			b := &rd.batches[i]
			b.msgs = make([]sockopt.Message, n.cfg.BatchSize)
			slab := make([]byte, n.cfg.BatchSize*n.cfg.MaxFrameSize)
			for j := range b.msgs {
				b.msgs[j].Buf = slab[j*n.cfg.MaxFrameSize : (j+1)*n.cfg.MaxFrameSize : (j+1)*n.cfg.MaxFrameSize]
			}
			free.TryPush(uint16(i))
		}
		r.readers = append(r.readers, rd)
		return nil
	}
	if err := add(n.uni, false); err != nil {
		return err
	}
	if n.mcast != nil {
		if err := add(n.mcast, true); err != nil {
			return err
		}
	}
	full, err := ringbuf.NewMPSC[rxRef](2 * rxBatchesPerReader)
	if err != nil {
		return err
	}
	r.full = full
	r.refs = make([]rxRef, 2*rxBatchesPerReader)
	return nil
}

func (r *receiver) start() {
	for i, rd := range r.readers {
		r.n.wg.Add(1)
		go r.read(uint8(i), rd)
	}
	r.n.wg.Add(1)
	go r.work()
}

// stop is called after the transports are closed: readers have returned or
// will; closing the ring lets the worker drain and exit.
func (r *receiver) stop() {
	r.full.Close()
	for _, rd := range r.readers {
		rd.free.Close()
	}
}

func (r *receiver) read(id uint8, rd *rxReader) {
	defer r.n.wg.Done()
	ctx := context.Background()
	for {
		if err := rd.free.Wait(ctx); err != nil {
			return
		}
		slot, ok := rd.free.TryPop()
		if !ok {
			continue
		}
		b := &rd.batches[slot]
		for {
			k, err := rd.t.ReadBatch(b.msgs)
			if err != nil {
				if errors.Is(err, net.ErrClosed) || r.n.closed.Load() {
					return
				}
				if r.n.lim.allow() {
					r.n.log.Warn("warpmesh: receive failed", "err", err)
				}
				continue
			}
			r.n.ctr.readSyscalls.Add(1)
			b.n = k
			break
		}
		// A small batch while the worker is idle is handled right here:
		// at low load a hand-off costs a goroutine wake-up per datagram,
		// which is most of the latency. Big batches go to the worker so
		// reading and processing overlap. The worker pops only under mu,
		// so an idle worker with an empty ring means nothing is in flight
		// and order is kept.
		if b.n <= inlineMax && r.full.Len() == 0 && r.mu.TryLock() {
			if r.full.Len() == 0 {
				r.process(rd, b, time.Now())
				r.mu.Unlock()
				rd.free.TryPush(slot)
				continue
			}
			r.mu.Unlock()
		}
		if err := r.full.Push(ctx, rxRef{reader: id, slot: slot}); err != nil {
			return
		}
	}
}

// inlineMax is the largest batch a reader handles itself.
const inlineMax = 8

func (r *receiver) work() {
	defer r.n.wg.Done()
	ctx := context.Background()
	for {
		if err := r.full.Wait(ctx); err != nil {
			return
		}
		r.mu.Lock()
		k := r.full.PopBatch(r.refs)
		now := time.Now()
		for _, ref := range r.refs[:k] {
			rd := r.readers[ref.reader]
			r.process(rd, &rd.batches[ref.slot], now)
			rd.free.TryPush(ref.slot) // never full: it holds this reader's slots
		}
		r.mu.Unlock()
	}
}

// process handles one batch; r.mu is held.
func (r *receiver) process(rd *rxReader, b *rxBatch, now time.Time) {
	allocprobe.Hit(allocprobe.ReaderBatch) // tests only: proves the allocation gates see this path
	for i := 0; i < b.n; i++ {
		m := &b.msgs[i]
		r.frame(m.Buf[:m.N], m.Addr, rd.viaGroup, now)
	}
	r.relay.flush()
	r.sendAcks(now)
	r.flushGaps()
}

// barrier returns once no batch that started before it is in progress.
func (r *receiver) barrier() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.barriers++
}

// runTick runs the repair timers (from the timers goroutine).
func (r *receiver) runTick() {
	r.mu.Lock()
	r.tick(time.Now())
	r.mu.Unlock()
}

// frame handles one datagram. It never panics on any input and allocates
// nothing for data frames.
func (r *receiver) frame(b []byte, from netip.AddrPort, viaGroup bool, now time.Time) {
	n := r.n
	n.ctr.framesReceived.Add(1)
	n.ctr.bytesReceived.Add(uint64(len(b)))
	h, _, err := codec.ParseHeader(b)
	if err != nil {
		n.ctr.drop(dropReasonOf(err))
		return
	}
	if h.Cluster != n.cfg.cluster {
		n.ctr.drop(DropWrongCluster)
		return
	}
	if h.Origin == n.id {
		n.ctr.drop(DropOwn)
		return
	}
	var payload []byte
	switch {
	case h.Flags&codec.FlagAuth != 0:
		if r.open == nil {
			n.ctr.drop(DropAuth) // no keyring: cannot verify
			return
		}
		pt, ok := r.open.open(&h, b)
		if !ok {
			n.ctr.drop(DropAuth)
			return
		}
		payload = pt
	case r.open != nil && n.cfg.Auth != AuthAcceptPlaintext && n.cfg.Auth != AuthSendPlaintext:
		n.ctr.drop(DropUnauthenticated)
		return
	default:
		payload = b[codec.HeaderLen : codec.HeaderLen+int(h.PayloadLen)]
	}
	// Nothing below runs for a frame that failed authentication.
	switch h.Type {
	case codec.TypeData:
		r.data(&h, b, payload, from, now)
		return
	case codec.TypeAlive, codec.TypeLeave, codec.TypeNack, codec.TypeHWM, codec.TypeAck, codec.TypeJoin,
		codec.TypeChallenge, codec.TypeResponse, codec.TypeProbe, codec.TypeSync,
		codec.TypeIHave, codec.TypeGraft, codec.TypePrune:
	default:
		n.ctr.drop(DropUnknownType)
		return
	}
	if err := codec.ValidatePayload(&h, payload); err != nil {
		n.ctr.drop(DropMalformed) // whole frame checked before any effect
		return
	}
	if h.Type == codec.TypeChallenge || h.Type == codec.TypeResponse {
		if !n.val.frame(&h, payload, from, now) { // address validation (validate.go)
			if h.Type == codec.TypeChallenge {
				r.challenged(&h, payload, from, now)
			}
			return // only a RESPONSE with a good cookie goes on, for its epoch and hwm
		}
	} else {
		switch n.admit(&h, payload, from, h.Flags&codec.FlagAuth != 0, now) {
		case admitDrop:
			return // forged or implausible: kept out of the replay window
		case admitStranger:
			r.alive(&h, payload, from, viaGroup, now) // challenged; no origin state yet
			return
		}
	}
	st := r.control(&h, now)
	if st == nil {
		return
	}
	switch h.Type {
	case codec.TypeAlive:
		r.alive(&h, payload, from, viaGroup, now)
	case codec.TypeLeave:
		if _, _, err := codec.ParseLeave(payload); err != nil {
			n.ctr.drop(DropMalformed)
			return
		}
		n.members.left(h.Origin, h.Epoch, now)
	case codec.TypeNack:
		r.nack(&h, payload, now)
	case codec.TypeHWM:
		n.ctr.hwmReceived.Add(1)
		r.relayDown(&h, b)
		// An HWM travels down the origin's tree behind its DATA frames,
		// so it is news of what has arrived, not of what is on its way.
		r.announced(st, h.Seq, now)
		return
	case codec.TypeAck:
		r.ack(&h, payload, now)
	case codec.TypeJoin:
		r.handleJoin(&h, payload, now)
	case codec.TypeProbe:
		n.hb.pr.handleProbe(&h, payload, now)
	case codec.TypeSync:
		if codec.SyncKind(payload[0]) == codec.SyncMarks { // ValidatePayload parsed the fixed part
			r.handleMarks(&h, payload)
			return
		}
		n.hb.pr.handleSync(&h, payload, now)
	case codec.TypeIHave:
		r.handleIHave(&h, payload, now)
	case codec.TypeGraft:
		r.handleGraft(&h, payload, now)
	case codec.TypePrune:
		r.handlePrune(&h, payload, now)
	}
	// Every control frame carries its sender's high-water mark in Seq. In
	// a direct mesh it comes the way the DATA frames did, one hop from the
	// origin; in a relay tree it would overtake DATA still hops away and
	// open spurious gaps, so there it is taken only after the frames had
	// time to come down the tree (HWM frames, relayed behind the data,
	// are taken at once). It is still taken: where views disagree a
	// relay may skip this node, data and HWM alike, and the origin's own
	// control frames are then the only news of what it missed.
	if r.n.treeDepth() == 0 {
		r.announced(st, h.Seq, now)
	} else {
		r.announceLater(st, h.Seq, now)
	}
}

// treeHWMDelay is how long, per relay hop, a control frame's high-water
// mark waits before a receiver in a relay tree takes it.
const treeHWMDelay = 20 * time.Millisecond

// announceLater holds a control frame's high-water mark until the frames
// it names had time to arrive down the tree (see frame). One mark is held
// per origin, the highest, with the time of the first.
func (r *receiver) announceLater(st *originState, hwm uint64, now time.Time) {
	if hwm <= st.s.Known() || hwm <= st.laterHWM {
		return
	}
	if st.laterHWM == 0 {
		st.laterAt = now
		r.later = append(r.later, st)
		r.n.timers.rxPending.Store(true)
		r.n.timers.kick()
	}
	st.laterHWM = hwm
}

// takeLater announces the held marks that have waited long enough; the
// repair tick calls it.
func (r *receiver) takeLater(now time.Time) {
	wait := treeHWMDelay * time.Duration(1+r.n.treeDepth())
	keep := r.later[:0]
	for _, st := range r.later {
		if now.Sub(st.laterAt) < wait || r.treeHold(st, now) {
			keep = append(keep, st)
			continue
		}
		hwm := st.laterHWM
		st.laterHWM = 0
		r.announced(st, hwm, now)
	}
	clear(r.later[len(keep):])
	r.later = keep
}

// challenged takes the high-water mark a member's CHALLENGE carries (its
// header's Seq, as on every control frame). A member that has declared
// us dead — it cannot hear us: an inbound-only partition on its side —
// sends us challenges instead of heartbeats, and no longer sends us its
// DATA. Its challenges are then the only news of what it publishes: the
// sequences they announce are missing here, NACKed, and given up with a
// Gap (caches flush) if the member cannot hear the NACKs either — never
// silently missed. Only a member's own, plausible challenge counts
// (admit), and only for a stream already known.
func (r *receiver) challenged(h *codec.Header, payload []byte, from netip.AddrPort, now time.Time) {
	n := r.n
	if addr, ok := n.members.validatedAddr(h.Origin); !ok || addr != from {
		return // a newcomer's challenge: not a member's news
	}
	if n.admit(h, payload, from, h.Flags&codec.FlagAuth != 0, now) != admitPass {
		return
	}
	st := r.origins[h.Origin]
	if st == nil || h.Epoch != st.epoch() || st.ctrl.Observe(h.Packet) != stream.New {
		return
	}
	n.members.challengedBy(h.Origin, now)
	st.probedAt = now
	st.heard = now
	r.announced(st, h.Seq, now)
}

// control applies epoch rules and the replay window to a control frame.
func (r *receiver) control(h *codec.Header, now time.Time) *originState {
	n := r.n
	st := r.origins[h.Origin]
	if st == nil {
		// Control frames of an origin we have no stream for create one
		// only when they come from a member, or are its heartbeat: a
		// stranger's NACK, ACK, HWM, LEAVE or JOIN grows no table.
		if h.Type != codec.TypeAlive && !r.isMember(h.Origin) {
			n.ctr.drop(DropUnknownMember)
			return nil
		}
		if st = r.stateFor(h.Origin, h.Epoch, h.Seq, now); st == nil {
			n.ctr.drop(DropTooManyOrigins)
			return nil
		}
	}
	switch {
	case h.Epoch < st.epoch():
		n.ctr.drop(DropOldEpoch)
		return nil
	case h.Epoch > st.epoch():
		r.newEpoch(st, h.Epoch, now)
	}
	if st.ctrl.Observe(h.Packet) != stream.New {
		n.ctr.drop(DropReplay)
		return nil
	}
	st.heard = now
	return st
}

func (r *receiver) data(h *codec.Header, frame, payload []byte, from netip.AddrPort, now time.Time) {
	n := r.n
	if err := codec.ValidateRecords(payload, h.Count); err != nil {
		n.ctr.drop(DropMalformed)
		return
	}
	if h.Seq == 0 || h.Seq > stream.MaxSeq {
		n.ctr.drop(DropMalformed)
		return
	}
	st := r.stateFor(h.Origin, h.Epoch, h.Seq-1, now)
	if st == nil {
		n.ctr.drop(DropTooManyOrigins)
		return
	}
	switch {
	case h.Epoch < st.epoch():
		n.ctr.drop(DropOldEpoch)
		return
	case h.Epoch > st.epoch():
		r.newEpoch(st, h.Epoch, now)
	}
	st.heard = now
	verdict, repaired := r.received(st, h.Seq, now)
	if verdict == stream.Duplicate {
		n.ctr.duplicates.Add(1)
		r.treeDuplicate(h, from, now)
		return
	}
	key := frameKey(h.Origin, h.Epoch, h.Seq)
	if verdict == stream.BelowWindow {
		if r.dedup.mayContain(key) {
			n.ctr.drop(DropTooOld)
			return
		}
	}
	r.dedup.add(key)
	if h.Flags&codec.FlagRetransmit != 0 {
		n.ctr.retransmitsReceived.Add(1)
	}

	it := codec.NewRecordIter(payload, h.Count)
	for rec, ok := it.Next(); ok; rec, ok = it.Next() {
		n.apply(rec.Key, rec.Flags == codec.RecordPrefix, h.Origin, h.Epoch, h.Seq)
	}
	n.ctr.recordsReceived.Add(uint64(h.Count))
	n.ctr.dataFrames.Add(1)
	r.ackDue(st)
	r.treeHeld(h, st, from, now)

	// Relay first copies down the origin's tree. A retransmission goes on
	// only when it filled a hole here: in a tree, what this node missed its
	// subtree missed too, and so it is repaired from here rather than by
	// one request per node below to the origin.
	if h.Flags&codec.FlagRetransmit == 0 || repaired {
		r.relayDown(h, frame)
	}
}

// relayDown forwards a frame (DATA, or the origin's HWM behind it) to this
// node's children in the origin's relay tree, in meshes above DirectLimit.
func (r *receiver) relayDown(h *codec.Header, frame []byte) {
	n := r.n
	if int(h.Hops)+1 >= int(h.HopLimit) {
		return
	}
	v := n.members.view.Load()
	if len(v.live) <= n.cfg.DirectLimit {
		return
	}
	r.dests = treeChildren(v, n.id, h.Origin, n.cfg.Fanout, r.dests[:0])
	if len(r.dests) > 0 && h.Type == codec.TypeData {
		r.ring.put(h, frame) // the children will NACK us for it (pruned ones too)
	}
	r.treeView() // grafts and prunes of an older view are forgotten first
	r.dests = r.treeDests(h.Origin, r.dests)
	if len(r.dests) > 0 {
		if h.Type == codec.TypeData && r.ring.get(h.Origin, h.Epoch, h.Seq) == nil {
			r.ring.put(h, frame) // grafted children only
		}
		r.relay.add(frame, h.Hops+1, r.dests)
	}
}

// alive handles an ALIVE. The sender's own heartbeat is taken only from a
// validated member; anyone else's address is challenged (validate.go).
// Only a validated sender's digest is read, and the members it names that
// are new, moved or back are challenged too, all within a credit of
// challengeCredit times this frame's size.
func (r *receiver) alive(h *codec.Header, payload []byte, from netip.AddrPort, viaGroup bool, now time.Time) {
	n := r.n
	a, off, err := codec.ParseAlive(payload)
	if err != nil {
		n.ctr.drop(DropMalformed)
		return
	}
	n.ctr.heartbeatsReceived.Add(1)
	addr := a.Addr
	if !addr.IsValid() || addr.Addr().IsUnspecified() || addr.Port() == 0 {
		addr = from
	}
	credit := challengeCredit * codec.FrameLen(h)
	taken, challenge := n.members.heard(h.Origin, h.Epoch, a.Incarnation, addr, viaGroup, now)
	if challenge.IsValid() {
		n.val.challenge(challenge, challenge == from, &credit, now)
	}
	if !taken {
		return
	}
	if n.members.swimming() {
		n.hb.reply(addr) // above DirectLimit only who misses us heartbeats us (probe.go)
	}
	refute := false
	vouch := n.members.vouches(h)
	rest := payload[off:]
	for i := 0; i < int(h.Count); i++ {
		e, m, err := codec.ParseDigestEntry(rest)
		if err != nil {
			n.ctr.drop(DropMalformed)
			break
		}
		rest = rest[m:]
		ref, ch := n.members.gossip(&e, n.epoch, n.inc.Load(), vouch, now)
		refute = refute || ref
		if ch.IsValid() {
			n.val.challenge(ch, false, &credit, now)
		}
	}
	if refute {
		n.inc.Add(1)
		n.hb.reply(addr)
	}
}

// relayQueue batches relayed frames: each is copied once (hops patched) and
// written to its tree children with the rest of the worker's batch.
type relayQueue struct {
	n    *Node
	slab [][]byte
	used int
	msgs []sockopt.Message
}

func (q *relayQueue) init(n *Node) {
	q.n = n
	q.slab = make([][]byte, 64)
	for i := range q.slab {
		q.slab[i] = make([]byte, 0, n.cfg.MaxFrameSize)
	}
	q.msgs = make([]sockopt.Message, 0, 256)
}

func (q *relayQueue) add(frame []byte, hops uint8, dests []netip.AddrPort) {
	if q.used == len(q.slab) || len(q.msgs)+len(dests) > cap(q.msgs) {
		q.flush()
	}
	buf := append(q.slab[q.used][:0], frame...)
	q.used++
	codec.SetHops(buf, hops)
	for _, d := range dests {
		q.msgs = append(q.msgs, sockopt.Message{Buf: buf, Addr: d})
	}
	q.n.ctr.relayed.Add(1)
}

func (q *relayQueue) flush() {
	if len(q.msgs) > 0 {
		q.n.write(q.msgs)
	}
	q.msgs = q.msgs[:0]
	q.used = 0
}
