package engine

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warpmesh/warpmesh/codec"
	"github.com/warpmesh/warpmesh/sockopt"
)

// Loss repair. Every DATA frame carries (origin, epoch, seq). A receiver
// tracks per origin the highest sequence below which everything arrived
// (cum) and the highest it knows to exist (known: from later frames, HWM
// frames and heartbeats). When known > cum there is a gap: after a short
// grace for reordering the receiver NACKs the missing ranges to the
// origin, again with backoff, until the gap closes (repaired) or the
// RepairTimeout passes, the origin answers that the frames are gone, the
// origin dies or restarts, or the gap slides out of the receive window —
// each of which raises a Gap event so the application can flush.
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
	maxOrigins     = 1 << 16               // origin states kept by a receiver
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

func (b *tokenBucket) take(now time.Time) bool {
	if b.last.IsZero() {
		b.last, b.tokens = now, b.burst
	}
	b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// ---- receiver side (all on the worker goroutine) ----

// stateFor returns the origin's state, creating it (and starting its
// expectations at startCum) on first contact. Returns nil when full.
func (r *receiver) stateFor(origin, epoch, startCum uint64) *originState {
	if st := r.origins[origin]; st != nil {
		return st
	}
	if len(r.origins) >= maxOrigins {
		return nil
	}
	st := &originState{id: origin, epoch: epoch} // allocates once per origin
	st.restart(epoch, startCum)
	r.origins[origin] = st
	return st
}

func (st *originState) restart(epoch, cum uint64) {
	st.epoch, st.cum, st.known = epoch, cum, cum
	st.win.reset()
	st.win.base = cum + 1
	st.ctrl.reset()
	st.gapSince, st.lastNack, st.backoff = time.Time{}, time.Time{}, 0
	st.nackedTo, st.newSince = cum, time.Time{}
	if st.noticed != nil {
		*st.noticed = [windowSize]uint32{}
	}
}

// newEpoch moves an origin to a later boot epoch; open gaps of the old
// epoch are given up. Everything of the new epoch is expected.
func (r *receiver) newEpoch(st *originState, epoch uint64, now time.Time) {
	if st.known > st.cum {
		r.giveUp(st, GapNewEpoch, now)
	}
	st.restart(epoch, 0)
}

// received records a new DATA sequence.
func (r *receiver) received(st *originState, seq uint64, now time.Time) seqVerdict {
	if seq >= st.win.base+windowSize {
		newBase := seq - windowSize + 1
		if newBase-1 > st.cum {
			// Missing frames are about to leave the window: flag them.
			st.known = max(st.known, newBase-1)
			r.giveUpThrough(st, newBase-1, GapTooOld, now)
		}
	}
	if seq > st.known && seq-st.known > 1 {
		r.notice(st, st.known+1, seq-1, now)
	}
	v := st.win.observe(seq)
	if v == seqNew {
		st.known = max(st.known, seq)
		if st.noticed != nil {
			if t := st.noticed[seq%windowSize]; t != 0 {
				st.noticed[seq%windowSize] = 0
				r.n.ctr.gapsRepaired.Add(1)
				r.n.ctr.repairLatency.observe(time.Duration(r.micros(now)-t) * time.Microsecond)
			}
		}
		r.advance(st, now)
	}
	return v
}

// notice records when the sequences in [from, to] were first known to be
// missing, for the repair statistics. The table is allocated on an
// origin's first loss.
func (r *receiver) notice(st *originState, from, to uint64, now time.Time) {
	// Only sequences inside the window have a slot; from may lie below it
	// (or have wrapped) after a hostile jump.
	from = max(from, st.win.base)
	to = min(to, st.win.base+windowSize-1)
	if from > to {
		return
	}
	if st.newSince.IsZero() {
		st.newSince = now
	}
	if st.noticed == nil {
		st.noticed = new([windowSize]uint32)
	}
	ns := max(r.micros(now), 1)
	for s := from; s <= to; s++ {
		if !st.win.has(s) {
			st.noticed[s%windowSize] = ns
			r.n.ctr.gapsDetected.Add(1)
		}
	}
}

// announced records a high-water mark from an HWM frame or a heartbeat.
func (r *receiver) announced(st *originState, hwm uint64, now time.Time) {
	if hwm <= st.known {
		return
	}
	r.notice(st, st.known+1, hwm, now)
	st.known = hwm
	if st.known-st.cum > windowSize {
		r.giveUp(st, GapTooOld, now)
		return
	}
	r.advance(st, now)
}

// advance moves cum over contiguous arrivals and opens or closes the gap.
func (r *receiver) advance(st *originState, now time.Time) {
	for st.cum < st.known && st.win.has(st.cum+1) {
		st.cum++
	}
	switch {
	case st.known > st.cum && st.gapSince.IsZero():
		st.gapSince, st.lastNack, st.backoff = now, time.Time{}, nackRetryMin
		if !st.pending {
			st.pending = true
			r.pending = append(r.pending, st)
			r.n.timers.rxPending.Store(true)
			r.n.timers.kick()
		}
	case st.known <= st.cum && !st.gapSince.IsZero():
		st.gapSince = time.Time{}
	}
}

// giveUp abandons every missing sequence up to known.
func (r *receiver) giveUp(st *originState, reason GapReason, now time.Time) {
	r.giveUpThrough(st, st.known, reason, now)
}

// giveUpThrough abandons the missing sequences in (cum, last] with one Gap
// event and moves cum past them.
func (r *receiver) giveUpThrough(st *originState, last uint64, reason GapReason, now time.Time) {
	var missing, first, final uint64
	top := min(last, st.win.base+windowSize-1) // bits exist up to here
	for s := st.cum + 1; s <= top; s++ {
		if !st.win.has(s) {
			if missing == 0 {
				first = s
			}
			missing++
			final = s
			// Not marked seen: should the original still turn up (it was
			// only late), it is applied, which is harmless after a flush.
			if st.noticed != nil {
				st.noticed[s%windowSize] = 0
			}
		}
	}
	if from := max(st.cum+1, top+1); last >= from {
		if missing == 0 {
			first = from
		}
		missing += last - from + 1
		final = last
	}
	st.cum = max(st.cum, last)
	if missing > 0 {
		r.n.ctr.gapsGivenUp[reason].Add(1)
		r.n.ctr.framesLost.Add(missing)
		r.n.events.push(Event{Type: EventGap, Gap: Gap{
			Origin: st.id, Epoch: st.epoch, Missing: missing, First: first, Last: final, Reason: reason,
		}})
	}
	if st.known <= st.cum {
		st.gapSince = time.Time{}
	}
	r.advance(st, now)
}

// oldestMissingAge is how long the first missing sequence has been known
// missing: under steady loss a gap never closes as a whole, so deadlines
// apply per sequence, not per gap.
func (r *receiver) oldestMissingAge(st *originState, now time.Time) time.Duration {
	if st.noticed != nil {
		if t := st.noticed[(st.cum+1)%windowSize]; t != 0 && !st.win.has(st.cum+1) {
			return time.Duration(r.micros(now)-t) * time.Microsecond
		}
	}
	return now.Sub(st.gapSince)
}

// giveUpExpired gives up the missing sequences, from the oldest, that have
// waited RepairTimeout, stopping at the first younger one.
func (r *receiver) giveUpExpired(st *originState, now time.Time) {
	if st.noticed == nil {
		r.giveUp(st, GapUnreachable, now)
		return
	}
	limit := r.n.cfg.RepairTimeout
	nowUs := r.micros(now)
	last := st.cum
	top := min(st.known, st.win.base+windowSize-1)
	for s := st.cum + 1; s <= top; s++ {
		if !st.win.has(s) {
			t := st.noticed[s%windowSize]
			if t != 0 && time.Duration(nowUs-t)*time.Microsecond < limit {
				break
			}
		}
		last = s
	}
	if last == st.cum {
		last = st.cum + 1 // the oldest has expired: at least it goes
	}
	r.giveUpThrough(st, last, GapUnreachable, now)
}

// micros is now in microseconds since the node started, wrapping every
// 71 minutes; differences stay right for any repair shorter than that.
func (r *receiver) micros(now time.Time) uint32 {
	return uint32(now.Sub(r.born) / time.Microsecond)
}

// giveUpRange abandons the missing sequences in [first, last] only (the
// origin said they are gone), with one Gap event; other missing sequences
// stay under repair. Above cum they are marked settled, so a late copy is
// then dropped as a duplicate.
func (r *receiver) giveUpRange(st *originState, first, last uint64, reason GapReason, now time.Time) {
	first = max(first, st.cum+1)
	last = min(last, st.known, st.win.base+windowSize-1)
	if first > last {
		return
	}
	if first == st.cum+1 {
		// The range starts at the repair front: the cumulative path also
		// moves cum past it.
		r.giveUpThrough(st, last, reason, now)
		return
	}
	var missing, lo, hi uint64
	for s := first; s <= last; s++ {
		if st.win.has(s) {
			continue
		}
		if missing == 0 {
			lo = s
		}
		missing++
		hi = s
		st.win.observe(s) // settled
		if st.noticed != nil {
			st.noticed[s%windowSize] = 0
		}
	}
	if missing > 0 {
		r.n.ctr.gapsGivenUp[reason].Add(1)
		r.n.ctr.framesLost.Add(missing)
		r.n.events.push(Event{Type: EventGap, Gap: Gap{
			Origin: st.id, Epoch: st.epoch, Missing: missing, First: lo, Last: hi, Reason: reason,
		}})
	}
	r.advance(st, now)
}

// tick runs repair timers for origins with open gaps.
func (r *receiver) tick(now time.Time) {
	grace := nackGrace * time.Duration(1+r.n.treeDepth())
	keep := r.pending[:0]
	for _, st := range r.pending {
		if st.known <= st.cum {
			st.pending = false
			continue
		}
		switch {
		case r.oldestMissingAge(st, now) >= r.n.cfg.RepairTimeout:
			r.giveUpExpired(st, now)
		case r.originGone(st.id):
			r.giveUp(st, GapOriginDead, now)
		default:
			if st.known > st.nackedTo && now.Sub(st.newSince) >= grace {
				// Newly missing sequences: ask at once, only for those.
				r.sendNack(st, max(st.cum, st.nackedTo)+1)
			}
			if now.Sub(st.lastNack) >= st.backoff {
				// Still missing after a request (a retransmission can be
				// lost too): ask again from the oldest, with backoff. Kept
				// apart from the first requests, which under steady loss
				// never stop and must not starve these.
				st.lastNack = now
				st.backoff = min(2*st.backoff, nackRetryMax)
				r.sendNack(st, st.cum+1)
			}
		}
		if st.known > st.cum {
			keep = append(keep, st)
		} else {
			st.pending = false
		}
	}
	clear(r.pending[len(keep):])
	r.pending = keep
	r.n.timers.rxPending.Store(len(r.pending) > 0)
}

func (r *receiver) originGone(id uint64) bool {
	m := r.n.members
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.members[id]
	return ok && (e.State == StateDead || e.State == StateLeft)
}

func (r *receiver) originAddr(id uint64) (netip.AddrPort, bool) {
	return r.n.members.validatedAddr(id) // never toward an unvalidated address
}

// sendNack asks the origin for the missing ranges in [from, known].
func (r *receiver) sendNack(st *originState, from uint64) {
	to, ok := r.originAddr(st.id)
	if !ok {
		st.nackedTo, st.newSince = st.known, time.Time{}
		return // unknown origin: the timeout will flag it
	}
	n := r.n
	maxRanges := codec.MaxNackRanges(n.cfg.MaxFrameSize, n.seal != nil)
	r.ranges = r.ranges[:0]
	var cur codec.SeqRange
	covered := st.known // the highest sequence this NACK speaks for
	for s := from; s <= st.known; s++ {
		if st.win.has(s) {
			continue
		}
		if cur.First != 0 && cur.Last+1 == s {
			cur.Last = s
			continue
		}
		if cur.First != 0 {
			if len(r.ranges) == maxRanges-1 {
				// The frame is full: the rest goes in the next NACK.
				covered = cur.Last
				break
			}
			r.ranges = append(r.ranges, cur)
		}
		cur = codec.SeqRange{First: s, Last: s}
		if s >= st.win.base+windowSize { // beyond the window all is missing
			cur.Last = st.known
			break
		}
	}
	if cur.First != 0 {
		r.ranges = append(r.ranges, cur)
	}
	if covered >= st.nackedTo {
		st.nackedTo = covered
	}
	if st.nackedTo >= st.known {
		st.newSince = time.Time{}
	}
	if len(r.ranges) == 0 {
		return
	}
	r.sendNackFrame(codec.Nack{Origin: st.id, Epoch: st.epoch}, r.ranges, to)
	n.ctr.nacksSent.Add(1)
}

func (r *receiver) sendNackFrame(nk codec.Nack, ranges []codec.SeqRange, to netip.AddrPort) {
	n := r.n
	h := n.controlHeader(codec.TypeNack)
	h.Count = uint16(len(ranges))
	h.PayloadLen = uint16(codec.NackPayloadLen(len(ranges)))
	b := codec.AppendHeader(r.ctrlBuf[:0], &h)
	b = codec.AppendNack(b, &nk)
	for _, rg := range ranges {
		b = codec.AppendSeqRange(b, rg)
	}
	b = n.sealFrame(b, &h, &r.sc)
	r.ctrlBuf = b
	r.ctrlMsg[0] = sockopt.Message{Buf: b, Addr: to}
	n.write(r.ctrlMsg[:1])
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
		if st == nil || st.epoch != nk.Epoch {
			return
		}
		for i := 0; i < int(h.Count) && st.known > st.cum; i++ {
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
		return // not about us
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
	v := n.members.view.Load()
	if len(v.live) <= n.cfg.DirectLimit {
		return 0
	}
	d, reach := 0, 1
	for reach < len(v.live)+1 {
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
	lastData  atomic.Int64 // unix nanos of the last DATA flush
	announced uint64       // last HWM announced (timer goroutine only)
	lastHWM   time.Time
	buf       []byte
	msgs      []sockopt.Message
	dests     []netip.AddrPort
	timer     *time.Timer
	sc        sealScratch
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
			if t.rxPending.Load() {
				busy = true
				t.n.rx.runTick()
			}
			if !busy {
				break
			}
			t.timer.Reset(repairTick)
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
	if n.group.IsValid() && v.allMulticast && len(v.live) <= n.cfg.DirectLimit {
		t.dests = append(t.dests, n.group)
	} else {
		t.dests = append(t.dests, v.live...)
	}
	if len(t.dests) == 0 {
		return
	}
	h := n.controlHeader(codec.TypeHWM)
	h.Seq = hwm
	b := codec.AppendHeader(t.buf[:0], &h)
	b = n.sealFrame(b, &h, &t.sc)
	t.buf = b
	t.msgs = t.msgs[:0]
	for _, d := range t.dests {
		t.msgs = append(t.msgs, sockopt.Message{Buf: b, Addr: d})
	}
	for m := t.msgs; len(m) > 0; {
		k := min(len(m), n.cfg.BatchSize)
		n.write(m[:k])
		m = m[k:]
	}
	n.ctr.hwmSent.Add(1)
}
