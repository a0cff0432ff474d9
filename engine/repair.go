package engine

import (
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warpmesh/warpmesh/codec"
	"github.com/warpmesh/warpmesh/engine/internal/plumtree"
	"github.com/warpmesh/warpmesh/sockopt"
)

// Loss repair, the origin's side. (The receiver's side — per-origin
// streams, their gaps and NACK schedule — is engine/internal/stream,
// driven from stream.go.)
//
// The origin keeps its recent DATA frames in a bounded retransmit ring and
// answers NACKs from known members only, at their advertised address, at a
// bounded rate, with the frame flagged as a retransmission and resealed
// under a fresh packet number.

const (
	nackGrace      = time.Millisecond      // reordering allowance before the first NACK
	nackRetryMin   = 5 * time.Millisecond  // first re-NACK interval
	nackRetryMax   = 40 * time.Millisecond // re-NACK backoff cap
	repairTick     = time.Millisecond      // timer loop period while work is pending
	hwmIdleDelay   = time.Millisecond      // idle time before announcing the high-water mark
	hwmMinInterval = 5 * time.Millisecond  // between announcements
	maxOrigins     = 8192                  // origin states kept by a receiver (members and strangers)
	maxStrangers   = 256                   // of which for origins outside the member table (DATA before ALIVE)
	reclaimEvery   = 100 * time.Millisecond
)

// retransmitRing holds the plaintext of recent DATA frames by sequence.
type retransmitRing struct {
	mu    sync.Mutex
	slots []rtSlot
	mask  uint64
}

type rtSlot struct {
	seq     uint64
	hdr     codec.Header
	payload []byte // cap MaxFrameSize
}

func newRetransmitRing(bytes, frameSize int) *retransmitRing {
	n := 1
	for n*frameSize < bytes {
		n <<= 1
	}
	r := &retransmitRing{slots: make([]rtSlot, n), mask: uint64(n - 1)}
	slab := make([]byte, n*frameSize)
	for i := range r.slots {
		r.slots[i].payload = slab[i*frameSize : i*frameSize : (i+1)*frameSize]
	}
	return r
}

// put stores frames (as built, unsealed) under their headers' sequences.
func (r *retransmitRing) put(hdrs []codec.Header, frames [][]byte) {
	r.mu.Lock()
	for i, f := range frames {
		h := &hdrs[i]
		s := &r.slots[h.Seq&r.mask]
		s.seq, s.hdr = h.Seq, *h
		s.payload = append(s.payload[:0], f[codec.HeaderLen:codec.HeaderLen+int(h.PayloadLen)]...)
	}
	r.mu.Unlock()
}

// build writes the retransmission of seq into dst (header flagged, new
// packet number) and reports whether the ring still held it.
func (r *retransmitRing) build(dst []byte, seq, packet uint64) ([]byte, codec.Header, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := &r.slots[seq&r.mask]
	if s.seq != seq || seq == 0 {
		return dst, codec.Header{}, false
	}
	h := s.hdr
	h.Flags |= codec.FlagRetransmit
	h.Packet = packet
	h.Hops = 0
	dst = codec.AppendHeader(dst[:0], &h)
	dst = append(dst, s.payload...)
	return dst, h, true
}

// tokenBucket bounds retransmissions per second.
type tokenBucket struct {
	rate, burst float64
	tokens      float64
	last        time.Time
}

func (b *tokenBucket) take(now time.Time) bool { return b.takeN(now, 1) }

// takeN takes cost tokens if the bucket holds them.
func (b *tokenBucket) takeN(now time.Time, cost float64) bool {
	if b.last.IsZero() {
		b.last, b.tokens = now, b.burst
	}
	b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	if b.tokens < cost {
		return false
	}
	b.tokens -= cost
	return true
}

// nack handles a NACK frame: a request for our frames, or an origin's
// answer that frames we asked for are gone.
func (r *receiver) nack(h *codec.Header, payload []byte, now time.Time) {
	n := r.n
	nk, off, err := codec.ParseNack(payload)
	if err != nil {
		n.ctr.drop(DropMalformed)
		return
	}
	ranges := payload[off:]
	if nk.Origin == h.Origin {
		// "Unavailable": the origin cannot retransmit these ranges.
		st := r.origins[h.Origin]
		if st == nil || st.epoch() != nk.Epoch {
			return
		}
		for i := 0; i < int(h.Count) && st.s.Open(); i++ {
			rg, m, err := codec.ParseSeqRange(ranges)
			if err != nil {
				break
			}
			ranges = ranges[m:]
			r.giveUpRange(st, rg.First, rg.Last, GapEvicted, now)
		}
		return
	}
	if nk.Origin != n.id {
		r.serveRelay(h, &nk, ranges, now) // a tree child asks its parent
		return
	}
	n.ctr.nacksReceived.Add(1)
	// Answer validated members only, at their validated address (a forged
	// member must not aim retransmissions at anyone), within the global
	// rate and the member's own byte budget (membership.repairBudget).
	to, budget, ok := n.members.repairBudget(h.Origin, now)
	if !ok {
		n.ctr.drop(DropUnknownMember)
		return
	}
	// Only sequences this node sent and may still hold are looked up: a
	// request for [1, 2^64) costs what the ring holds, not 2^64 steps.
	hwm := n.hwm.Load()
	oldest := hwm - min(hwm, uint64(len(n.retrans.slots))) + 1
	spent := 0
	r.unavail = r.unavail[:0]
	k := 0
ranges:
	for i := 0; i < int(h.Count); i++ {
		rg, m, err := codec.ParseSeqRange(ranges)
		if err != nil {
			n.ctr.drop(DropMalformed)
			break
		}
		ranges = ranges[m:]
		if nk.Epoch != n.epoch {
			r.unavail = append(r.unavail, rg)
			continue
		}
		first, last := rg.First, min(rg.Last, hwm)
		if first > last {
			continue // nothing was sent there
		}
		if first < oldest {
			r.unavail = append(r.unavail, codec.SeqRange{First: first, Last: min(last, oldest-1)})
			first = min(oldest, last)
			if oldest > last {
				continue
			}
		}
		for s := first; s <= last; s++ {
			if spent >= budget || !r.bucket.take(now) {
				break ranges // rate or budget bound: the receiver asks again
			}
			buf, hdr, ok := n.retrans.build(r.rtSlab[k][:0], s, n.packet.Add(1))
			if !ok {
				r.addUnavail(s)
				spent += codec.SeqRangeLen
				continue
			}
			buf = n.sealFrame(buf, &hdr, &r.sc)
			r.rtSlab[k] = buf
			r.rtMsgs[k] = sockopt.Message{Buf: buf, Addr: to}
			k++
			spent += len(buf)
			n.ctr.retransmitted.Add(1)
			if k == len(r.rtMsgs) {
				n.write(r.rtMsgs[:k])
				k = 0
			}
			if s == last { // guard against Last == MaxUint64 wrap
				break
			}
		}
	}
	if k > 0 {
		n.write(r.rtMsgs[:k])
	}
	n.members.repairSpent(h.Origin, spent)
	if len(r.unavail) > 0 {
		mr := codec.MaxNackRanges(n.cfg.MaxFrameSize, n.seal != nil)
		if len(r.unavail) > mr {
			r.unavail = r.unavail[:mr]
		}
		r.sendNackFrame(codec.Nack{Origin: n.id, Epoch: nk.Epoch}, r.unavail, to)
	}
}

func (r *receiver) addUnavail(s uint64) {
	if l := len(r.unavail); l > 0 && r.unavail[l-1].Last+1 == s {
		r.unavail[l-1].Last = s
		return
	}
	r.unavail = append(r.unavail, codec.SeqRange{First: s, Last: s})
}

// treeDepth is the number of relay hops a frame travels in the current
// mesh: 0 while the origin reaches every member directly.
func (n *Node) treeDepth() int {
	live := n.members.liveMembers() // not view.Load: called per control frame
	if live <= n.cfg.DirectLimit {
		return 0
	}
	d, reach := 0, 1
	for reach < live+1 {
		reach = reach*n.cfg.Fanout + 1
		d++
	}
	return d
}

// ---- timers: HWM announcements and repair ticks ----

// timers is a goroutine that runs only while there is timed work: an
// origin that went idle with an unannounced high-water mark, or receive
// gaps awaiting NACKs. Otherwise it sleeps until kicked.
type timers struct {
	n         *Node
	wake      chan struct{}
	rxPending atomic.Bool
	// treePending: the Plumtree state has timed work (plumtree.go).
	treePending atomic.Bool
	lastData    atomic.Int64 // unix nanos of the last DATA flush
	announced   uint64       // last HWM announced (timer goroutine only)
	lastHWM     time.Time
	buf         []byte
	msgs        []sockopt.Message
	dests       []netip.AddrPort
	timer       *time.Timer
	sc          sealScratch
}

func (t *timers) init(n *Node) {
	t.n = n
	t.wake = make(chan struct{}, 1)
	t.buf = make([]byte, 0, codec.HeaderLen+codec.TagLen)
	t.dests = make([]netip.AddrPort, 0, 64)
	t.timer = time.NewTimer(time.Hour)
	t.timer.Stop()
}

func (t *timers) kick() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

func (t *timers) run() {
	defer t.n.wg.Done()
	for {
		select {
		case <-t.n.ctx.Done():
			return
		case <-t.wake:
		}
		for {
			busy := false
			now := time.Now()
			if hwm := t.n.hwm.Load(); hwm > t.announced {
				busy = true
				idle := now.Sub(time.Unix(0, t.lastData.Load()))
				// In a relay tree, copies are still hops away when the
				// origin goes idle: wait for them before announcing.
				delay := hwmIdleDelay * time.Duration(1+2*t.n.treeDepth())
				if idle >= delay && now.Sub(t.lastHWM) >= hwmMinInterval {
					t.announce(hwm)
					t.announced, t.lastHWM = hwm, now
				}
			}
			next := repairTick
			if t.rxPending.Load() {
				busy = true
				t.n.rx.runTick()
			}
			if t.treePending.Load() {
				// The tree's schedule sleeps until its own deadline
				// when nothing else is due sooner.
				if d := t.n.rx.runTreeTick(now); d > 0 {
					if !busy {
						next = d
					}
					busy = true
				}
			}
			if !t.n.ready.Load() {
				if !busy {
					next = joinTick
				} else {
					next = min(next, joinTick)
				}
				busy = true
				t.n.rx.joinCheck(now)
			}
			if !busy {
				break
			}
			t.timer.Reset(next)
			select {
			case <-t.n.ctx.Done():
				return
			case <-t.timer.C:
			}
		}
	}
}

// announce sends an HWM frame to every live member (or the group).
func (t *timers) announce(hwm uint64) {
	n := t.n
	v := n.members.view.Load()
	t.dests = t.dests[:0]
	tree := len(v.live) > n.cfg.DirectLimit
	switch {
	case tree:
		// Down our own tree, behind the DATA frames: the HWM must not
		// overtake them (see receiver.relayDown).
		t.dests = treeChildren(v, n.id, n.id, n.cfg.Fanout, t.dests)
	case n.group.IsValid() && v.allMulticast:
		t.dests = append(t.dests, n.group)
	default:
		t.dests = append(t.dests, v.live...)
	}
	if len(t.dests) == 0 {
		return
	}
	h := n.controlHeader(codec.TypeHWM)
	h.Seq = hwm
	if tree {
		h.HopLimit = uint8(n.cfg.HopLimit)
	}
	b := codec.AppendHeader(t.buf[:0], &h)
	b = n.sealFrame(b, &h, &t.sc)
	t.buf = b
	t.msgs = t.msgs[:0]
	for _, d := range t.dests {
		t.msgs = append(t.msgs, sockopt.Message{Buf: b, Addr: d})
	}
	n.writeBatched(t.msgs)
	n.ctr.hwmSent.Add(1)
}

// ---- repair from a tree parent ----
//
// In a relay tree a frame lost on one link is missing in the whole
// subtree below it, and every node there would NACK the origin for it.
// Instead a receiver asks its tree parent (treeParent), which keeps the
// frames it relayed in a relayRing and answers from it; a parent that
// missed the frame too repairs it from its own parent and relays the
// repair down (receiver.data), so the origin hears only from its own
// children and from receivers whose parent could not help within
// treeParentWindow per hop (ring overwritten, views that disagree).

// relayRing keeps recent DATA frames this node relayed, as received
// (sealed: a relay forwards frames verbatim), by (origin, epoch, seq). It
// is direct-mapped: a frame's slot is fixed by origin and seq, and a new
// frame overwrites whatever was there, so consecutive frames of one
// origin take consecutive slots and origins share the capacity. Guarded
// by receiver.mu. It does not allocate after its first put.
type relayRing struct {
	slots     []relaySlot
	frameSize int
}

type relaySlot struct {
	origin, epoch, seq uint64
	at                 time.Time // when it was put (relayed)
	frame              []byte    // cap frameSize
}

func (q *relayRing) slot(origin, seq uint64) *relaySlot {
	return &q.slots[(seq+origin*0x9E3779B97F4A7C15)&uint64(len(q.slots)-1)]
}

// put keeps a copy of frame (a DATA frame of h, as received).
func (q *relayRing) put(h *codec.Header, frame []byte) {
	if len(frame) > q.frameSize {
		return
	}
	if q.slots == nil {
		q.slots = make([]relaySlot, treeRingFrames)
		slab := make([]byte, treeRingFrames*q.frameSize)
		for i := range q.slots {
			q.slots[i].frame = slab[i*q.frameSize : i*q.frameSize : (i+1)*q.frameSize]
		}
	}
	s := q.slot(h.Origin, h.Seq)
	s.origin, s.epoch, s.seq = h.Origin, h.Epoch, h.Seq
	s.at = time.Now()
	s.frame = append(s.frame[:0], frame...)
}

// get returns the kept frame (origin, epoch, seq), or nil.
func (q *relayRing) get(origin, epoch, seq uint64) []byte {
	f, _ := q.getAt(origin, epoch, seq)
	return f
}

// getAt is get, with the time the frame was relayed.
func (q *relayRing) getAt(origin, epoch, seq uint64) ([]byte, time.Time) {
	if q.slots == nil || seq == 0 {
		return nil, time.Time{}
	}
	s := q.slot(origin, seq)
	if s.seq != seq || s.origin != origin || s.epoch != epoch {
		return nil, time.Time{}
	}
	return s.frame, s.at
}

// serveRelay answers a tree child's NACK for another origin's frames from
// the relay ring: what it holds goes back as it was relayed (one hop
// further), within the same global rate and per-member budget as the
// origin's retransmissions. What it does not hold gets no answer: the
// child asks the origin once treeParentWindow has passed, and what this
// node is missing itself it repairs and relays down.
func (r *receiver) serveRelay(h *codec.Header, nk *codec.Nack, ranges []byte, now time.Time) {
	n := r.n
	st := r.origins[nk.Origin]
	if st == nil || st.epoch() != nk.Epoch {
		return
	}
	sv, ok := r.startServe(h.Origin, now)
	if !ok {
		return
	}
	r.unpruneChild(st, sv.to)
	n.ctr.nacksReceived.Add(1)
	if v := r.treeView(); v != nil {
		// A child we push to: frames relayed to it within the parent
		// window are on their way (its NACK, queued here behind them,
		// was sent before they came) and are not sent twice.
		r.dests = r.treeDests(st.id, treeChildren(v, n.id, st.id, n.cfg.Fanout, r.dests[:0]))
		if slices.Contains(r.dests, sv.to) {
			sv.fresh = treeParentWindow * time.Duration(1+n.treeDepth())
		}
	}
	holds := false // we have (some of) what it asks for
	above := false // it asks for frames above our cum
	for i := 0; i < int(h.Count); i++ {
		rg, m, err := codec.ParseSeqRange(ranges)
		if err != nil {
			n.ctr.drop(DropMalformed)
			break
		}
		ranges = ranges[m:]
		holds = holds || rg.First <= st.cum() || st.s.Seen(rg.First)
		above = above || rg.Last > st.cum()
		if r.ring.slots != nil && !r.serveRange(&sv, st, rg.First, rg.Last, now) {
			break
		}
	}
	served := sv.spent > 0
	r.endServe(&sv)
	if (above || !served) && !sv.inFlight && r.treeView() != nil {
		// Say how far we hold (an IHAVE of our mark, 0 for none yet):
		// the child waits for what we miss too, which we repair and
		// relay down, rather than asking the origin after
		// treeParentWindow per hop, and asks the origin at once for
		// what we hold but could not resend (askParent). Under loss a
		// parent and its subtree miss the same frames, and on a loaded
		// mesh a child asks for frames its parent has not got yet.
		r.tree.graft[0] = codec.TreeEntry{Origin: st.id, Epoch: st.epoch(), Seq: st.cum()}
		r.sendTree(codec.TypeIHave, r.tree.graft[:], sv.to)
		n.ctr.ihavesSent.Add(1)
	}
	if served || holds {
		// Even without the frames in our ring (our own tree may make us
		// a leaf for this origin), a holder adopts: the next frames are
		// pushed, and kept for it.
		r.adoptChild(h.Origin, sv.to, st)
	}
}

// unpruneChild: a member that NACKs us takes us for its tree parent for
// st's origin; if it pruned us while our views disagreed, push to it
// again (a child starved by a stale prune asks, and is fed at once).
func (r *receiver) unpruneChild(st *originState, addr netip.AddrPort) {
	if r.treeView() != nil && r.tree.m.Pruned(st.id, addr) {
		r.tree.m.Unprune(st.id, addr)
	}
}

// adoptChild makes a member that repairs from us, taking us for its tree
// parent, an eager child for the origin when our own tree does not give
// it to us (our views disagree): it is pushed the next frames instead of
// asking for each (an implicit GRAFT, see plumtree.go).
func (r *receiver) adoptChild(id uint64, addr netip.AddrPort, st *originState) {
	v := r.treeView()
	if v == nil {
		return
	}
	r.dests = treeChildren(v, r.n.id, st.id, r.n.cfg.Fanout, r.dests[:0])
	if slices.Contains(r.dests, addr) {
		return // a child that lost a frame: the tree already pushes to it
	}
	if !r.tree.m.Graft(plumtree.Peer{ID: id, Addr: addr}, plumtree.Entry{Origin: st.id, Epoch: st.epoch(), Seq: 1}) {
		r.n.ctr.drop(DropTreeRefused)
		return
	}
	r.n.ctr.graftsAdopted.Add(1)
}

// serveSeqs resends a member the frames of origin's epoch in [first,
// last] that the relay ring holds (a GRAFT).
func (r *receiver) serveSeqs(requester, origin, epoch, first, last uint64, now time.Time) {
	st := r.origins[origin]
	if st == nil || st.epoch() != epoch || r.ring.slots == nil || first > last {
		return
	}
	if sv, ok := r.startServe(requester, now); ok {
		r.serveRange(&sv, st, first, last, now)
		r.endServe(&sv)
	}
}

// serving is one answer from the relay ring in progress.
type serving struct {
	requester                uint64
	to                       netip.AddrPort
	budget, spent, k, looked int
	fresh                    time.Duration // frames relayed to it this recently are not resent (0: all are)
	inFlight                 bool          // some were not, for that reason
}

// startServe checks the requester (a validated member, answered at its
// validated address) and takes its repair budget.
func (r *receiver) startServe(requester uint64, now time.Time) (serving, bool) {
	to, budget, ok := r.n.members.repairBudget(requester, now)
	if !ok {
		r.n.ctr.drop(DropUnknownMember)
		return serving{}, false
	}
	return serving{requester: requester, to: to, budget: budget}, true
}

// serveRange queues the ring's frames of st in [first, last]; it reports
// false once a bound (rate, budget, lookups) stops the answer. Only
// sequences the ring may hold are looked up: a request for [1, 2^64)
// costs at most the ring's size.
func (r *receiver) serveRange(sv *serving, st *originState, first, last uint64, now time.Time) bool {
	n := r.n
	known := st.s.Known()
	oldest := known - min(known, uint64(treeRingFrames)) + 1
	first, last = max(first, oldest), min(last, known)
	for s := first; s <= last && first <= last; s++ {
		if sv.looked++; sv.looked > treeRingFrames {
			return false
		}
		f, at := r.ring.getAt(st.id, st.epoch(), s)
		if f == nil {
			continue
		}
		if sv.fresh > 0 && now.Sub(at) < sv.fresh {
			sv.inFlight = true
			continue
		}
		if sv.spent >= sv.budget || !r.bucket.take(now) {
			return false // rate or budget bound: the requester asks again
		}
		fh, _, err := codec.ParseHeader(f)
		if err != nil || int(fh.Hops)+1 >= int(fh.HopLimit) {
			continue
		}
		buf := append(r.rtSlab[sv.k][:0], f...)
		codec.SetHops(buf, fh.Hops+1)
		r.rtSlab[sv.k] = buf
		r.rtMsgs[sv.k] = sockopt.Message{Buf: buf, Addr: sv.to}
		sv.k++
		sv.spent += len(buf)
		n.ctr.repairsServed.Add(1)
		if sv.k == len(r.rtMsgs) {
			n.write(r.rtMsgs[:sv.k])
			sv.k = 0
		}
	}
	return true
}

// endServe sends what is queued and charges the requester's budget.
func (r *receiver) endServe(sv *serving) {
	if sv.k > 0 {
		r.n.write(r.rtMsgs[:sv.k])
		sv.k = 0
	}
	r.n.members.repairSpent(sv.requester, sv.spent)
}

// repairTarget is where st's NACK from sequence from goes: the tree
// parent while the oldest missing frame is younger than treeParentWindow
// per hop (always, for a first request of newly missing frames) or the
// parent misses them too or has not answered yet (askParent), the origin
// otherwise, and always in a direct mesh.
func (r *receiver) repairTarget(st *originState, from uint64, now time.Time) (netip.AddrPort, bool) {
	n := r.n
	if depth := n.treeDepth(); depth > 0 {
		v := n.members.view.Load()
		if to, _, ok := treeParent(v, n.id, st.id, n.cfg.Fanout); ok {
			fresh := from > st.cum()+1
			window := treeParentWindow * time.Duration(1+depth)
			age := st.s.OldestMissingAge(r.clock(now))
			if fresh || age < window || r.askParent(st, age, window, now) {
				return to, true
			}
			r.treeFallback(st, now) // the parent did not help: graft a holder
		}
	}
	return r.originAddr(st.id)
}
