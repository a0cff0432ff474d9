package engine

import (
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"github.com/warpmesh/warpmesh/codec"
	"github.com/warpmesh/warpmesh/engine/internal/stream"
	"github.com/warpmesh/warpmesh/sockopt"
)

// The receiver's side of loss repair. Every DATA frame carries (origin,
// epoch, seq); each origin's stream is a stream.Stream — a pure state
// machine that knows what arrived, what is missing, when to ask again and
// what must be given up. This file drives it: it creates and forgets the
// per-origin states within the table's caps, feeds them frames with the
// time, turns their tallies into counters, sends the NACKs they ask for
// and raises one Gap event per origin for what they give up together.
//
// All of it runs under receiver.mu (the worker, an inline reader, or the
// repair tick).

// replaySize is the control-frame replay window per origin, in packet
// numbers (128 B).
const replaySize = 1024

// originState is what the worker knows of one origin.
type originState struct {
	id        uint64
	s         stream.Stream // the DATA stream of the current epoch
	ctrl      stream.Window // packet numbers of control frames (replay window)
	pending   bool          // in receiver.pending
	acked     uint64        // cum last reported to the origin (ACK)
	lastAck   time.Time
	ackQueued bool      // in receiver.acks
	joined    bool      // accounted for: the JOIN answer arrived, or the whole epoch is expected
	stranger  bool      // created for an origin outside the member table
	heard     time.Time // last frame of any kind from this origin
	losing    bool      // in receiver.lostList
	laterHWM  uint64    // a control frame's mark held in a relay tree (receiver.announceLater); 0: none
	laterAt   time.Time
	probedAt  time.Time // last CHALLENGE from this origin: it has declared us dead (receiver.challenged)
}

func (st *originState) epoch() uint64 { return st.s.Epoch() }
func (st *originState) cum() uint64   { return st.s.Cum() }

// repairParams are the stream timings for this node.
func (r *receiver) repairParams() *stream.Params {
	if r.params.RepairTimeout == 0 {
		grace := nackGrace * time.Duration(1+r.n.treeDepth())
		r.params = stream.Params{Grace: grace, RetryMin: nackRetryMin, RetryMax: nackRetryMax, RepairTimeout: r.n.cfg.RepairTimeout}
	}
	return &r.params
}

// clock is now as the streams see it: time since the receiver started.
func (r *receiver) clock(now time.Time) time.Duration { return now.Sub(r.born) }

// settle applies what a stream call tallied, queues the stream for the
// repair timer when it has a gap, and for a Gap event when it lost some.
func (r *receiver) settle(st *originState, t *stream.Tally) {
	c := &r.n.ctr
	if t.Detected != 0 {
		c.gapsDetected.Add(t.Detected)
	}
	if t.Repaired != 0 {
		c.gapsRepaired.Add(t.Repaired)
	}
	if t.NotOwed != 0 {
		c.gapsNotOwed.Add(t.NotOwed)
	}
	if t.Lost != 0 {
		c.framesLost.Add(t.Lost)
		if !st.losing {
			st.losing = true
			r.lostList = append(r.lostList, st)
			if !r.n.timers.rxPending.Load() {
				r.n.timers.rxPending.Store(true) // the next tick flushes, should no batch end first
				r.n.timers.kick()
			}
		}
	}
	*t = stream.Tally{}
	if st.s.Open() && !st.pending {
		st.pending = true
		r.pending = append(r.pending, st)
		r.n.timers.rxPending.Store(true)
		r.n.timers.kick()
	}
}

// gapWatch lets a cache's read path see, without a lock, what the repair
// timer and the event goroutine may not have acted on yet: how many Gap
// events have been raised, and when the oldest open gap is due to be
// given up. A process short of CPU (a loaded machine, one of its threads
// descheduled) can run a reader while the goroutines that give the gap up
// and deliver its event wait; the bound then still holds for what the
// reader is served (Node.GapPending).
type gapWatch struct {
	raised atomic.Uint64 // Gap events raised (counted before they are queued)
	due    atomic.Int64  // receiver clock (ns since born) when the oldest open gap expires; 0: none
}

// watchDue records when st's oldest missing sequence expires, if earlier
// than what is recorded (a gap that opened). r.mu is held.
func (r *receiver) watchDue(st *originState, now time.Time) {
	if !st.s.Open() {
		return
	}
	clk := r.clock(now)
	d := int64(clk + r.repairParams().RepairTimeout - st.s.OldestMissingAge(clk))
	d = max(d, 1)
	if cur := r.watch.due.Load(); cur == 0 || d < cur {
		r.watch.due.Store(d)
	}
}

// rewatch recomputes the earliest expiry over the origins with open gaps
// (the repair tick). r.mu is held.
func (r *receiver) rewatch(now time.Time) {
	clk := r.clock(now)
	rt := r.repairParams().RepairTimeout
	var due int64
	for _, st := range r.pending {
		if st.s.Open() {
			d := max(int64(clk+rt-st.s.OldestMissingAge(clk)), 1)
			if due == 0 || d < due {
				due = d
			}
		}
	}
	if r.watch.due.Load() != due {
		r.watch.due.Store(due)
	}
}

// GapsRaised returns how many Gap events the node has raised so far. A
// cache that flushes on every Gap event reads it before each flush and
// passes the value to GapPending. It does not allocate.
func (n *Node) GapsRaised() uint64 { return n.rx.watch.raised.Load() }

// GapPending reports whether invalidations may have been missed that a
// cache whose last flush began after flushed Gap events (GapsRaised) has
// not flushed for yet: a Gap event raised since (still on its way to the
// handlers), or an open gap that has waited RepairTimeout and is about to
// be given up (the repair timer has not run yet). A cache must not serve
// what it holds while it is true: the staleness bound holds for reads
// even when the timer and event goroutines wait for a CPU. It costs two
// atomic loads, and a clock read while a gap is open; it does not
// allocate.
func (n *Node) GapPending(flushed uint64) bool {
	w := &n.rx.watch
	if w.raised.Load() != flushed {
		return true
	}
	d := w.due.Load()
	return d != 0 && int64(time.Since(n.rx.born)) >= d
}

// flushGaps raises one Gap event per origin for the sequences given up
// since the last flush (a batch, a tick). r.mu is held.
func (r *receiver) flushGaps() {
	for _, st := range r.lostList {
		st.losing = false
		if l, ok := st.s.TakeLoss(); ok {
			r.watch.raised.Add(1)
			r.n.ctr.gapsGivenUp[l.Reason].Add(1)
			r.n.events.push(Event{Type: EventGap, Gap: Gap{
				Origin: st.id, Epoch: l.Epoch, Missing: l.Missing, First: l.First, Last: l.Last, Reason: GapReason(l.Reason),
			}})
		}
	}
	clear(r.lostList)
	r.lostList = r.lostList[:0]
}

// received records a new DATA sequence; repaired says it filled a hole.
func (r *receiver) received(st *originState, seq uint64, now time.Time) (v stream.Verdict, repaired bool) {
	var t stream.Tally
	v, after := st.s.Observe(seq, r.clock(now), &t)
	if after > 0 {
		r.n.ctr.repairLatency.observe(after)
	}
	r.settle(st, &t)
	r.watchDue(st, now)
	return v, after > 0
}

// announced records a high-water mark from an HWM frame or a heartbeat.
func (r *receiver) announced(st *originState, hwm uint64, now time.Time) {
	var t stream.Tally
	st.s.Announce(hwm, r.clock(now), &t)
	r.settle(st, &t)
	r.watchDue(st, now)
}

// giveUp abandons every missing sequence of st.
func (r *receiver) giveUp(st *originState, reason GapReason, now time.Time) {
	var t stream.Tally
	st.s.GiveUpAll(stream.Reason(reason), r.clock(now), &t)
	r.settle(st, &t)
}

// giveUpRange abandons the missing sequences in [first, last] only.
func (r *receiver) giveUpRange(st *originState, first, last uint64, reason GapReason, now time.Time) {
	var t stream.Tally
	st.s.GiveUpRange(first, last, stream.Reason(reason), r.clock(now), &t)
	r.settle(st, &t)
}

// rebase moves st's expectation to "everything after cum" (JOIN answer,
// readiness): see stream.Stream.Rebase.
func (r *receiver) rebase(st *originState, cum uint64, now time.Time) {
	var t stream.Tally
	st.s.Rebase(cum, r.clock(now), &t)
	r.settle(st, &t)
	r.watchDue(st, now)
}

// stateFor returns the origin's state, creating it on first contact, with
// its expectations starting at startCum(origin, epoch, seen) (join.go):
// seen is the sequence the frame at hand shows was published. Returns nil when the table
// is full of origins it may not forget.
//
// The table is bounded two ways, so that a flood of forged origins can
// neither exhaust memory nor lock a legitimate newcomer out: at most
// maxStrangers states belong to origins outside the member table (a
// stranger's DATA arriving before its heartbeat), the oldest of them
// evicted first; and at most maxOrigins states in all, where states of
// origins that are no longer members and have been silent for DeadAfter
// are reclaimed when the table is full. A state is ~300 B, plus 2 KiB for
// its DATA window from its first DATA frame and 64 KiB of repair
// timestamps from its first loss.
func (r *receiver) stateFor(origin, epoch, seen uint64, now time.Time) *originState {
	if st := r.origins[origin]; st != nil {
		return st
	}
	member := r.isMember(origin)
	if !member && r.strangerCount() >= maxStrangers {
		r.evictStranger()
	}
	if len(r.origins) >= maxOrigins && !r.reclaim(now) {
		return nil
	}
	// Allocates once per origin.
	st := &originState{id: origin, joined: r.join.everReady, stranger: !member, ctrl: stream.NewWindow(replaySize)}
	st.s.Reset(epoch, r.startCum(origin, epoch, seen))
	st.heard = now
	r.origins[origin] = st
	r.n.ctr.origins.Add(1)
	if !member {
		r.strangers = append(r.strangers, origin)
	}
	return st
}

func (r *receiver) isMember(id uint64) bool {
	m := r.n.members
	m.mu.Lock()
	_, ok := m.members[id]
	m.mu.Unlock()
	return ok
}

// strangerCount drops stranger ids that have since become members (or
// whose state is gone) from the FIFO and returns its length.
func (r *receiver) strangerCount() int {
	k := 0
	for _, id := range r.strangers {
		st := r.origins[id]
		if st == nil || !st.stranger {
			continue
		}
		if r.isMember(id) {
			st.stranger = false
			continue
		}
		r.strangers[k] = id
		k++
	}
	clear(r.strangers[k:])
	r.strangers = r.strangers[:k]
	return k
}

// evictStranger forgets the oldest stranger's state.
func (r *receiver) evictStranger() {
	if len(r.strangers) == 0 {
		return
	}
	id := r.strangers[0]
	r.strangers = append(r.strangers[:0], r.strangers[1:]...)
	r.forget(id)
	r.n.ctr.originsEvicted.Add(1)
}

// reclaim frees the states of origins that are not members and have been
// silent for DeadAfter, at most once per reclaimEvery, and reports whether
// there is room now.
func (r *receiver) reclaim(now time.Time) bool {
	if now.Sub(r.lastReclaim) >= reclaimEvery {
		r.lastReclaim = now
		for id, st := range r.origins {
			if now.Sub(st.heard) >= r.n.cfg.DeadAfter && !r.isMember(id) {
				r.forget(id)
				r.n.ctr.originsEvicted.Add(1)
			}
		}
	}
	return len(r.origins) < maxOrigins
}

// forget drops an origin's state; open gaps are given up first (its
// sequences can no longer be tracked).
func (r *receiver) forget(id uint64) {
	st := r.origins[id]
	if st == nil {
		return
	}
	if st.s.Open() {
		r.giveUp(st, GapTooOld, time.Now())
	}
	r.flushGaps()
	if st.pending {
		r.pending = slices.DeleteFunc(r.pending, func(p *originState) bool { return p == st })
		st.pending = false
	}
	if st.ackQueued {
		r.acks = slices.DeleteFunc(r.acks, func(p *originState) bool { return p == st })
		st.ackQueued = false
	}
	if st.laterHWM != 0 {
		r.later = slices.DeleteFunc(r.later, func(p *originState) bool { return p == st })
		st.laterHWM = 0
	}
	delete(r.origins, id)
	r.n.ctr.origins.Add(-1)
	r.rewatch(time.Now())
}

// newEpoch moves an origin to a later boot epoch; open gaps of the old
// epoch are given up, as one event of their own. A fresh node is owed the
// new epoch only from its JOIN answer, which it asks for again; a ready
// one is owed all of it after the mark a member gave it (marks.go).
func (r *receiver) newEpoch(st *originState, epoch uint64, now time.Time) {
	if st.s.Open() {
		r.giveUp(st, GapNewEpoch, now)
	}
	r.flushGaps()
	if st.laterHWM != 0 { // a mark of the old epoch
		r.later = slices.DeleteFunc(r.later, func(p *originState) bool { return p == st })
		st.laterHWM = 0
	}
	st.s.Reset(epoch, 0)
	if r.join.everReady {
		st.s.Reset(epoch, r.markFor(st.id, epoch))
	}
	st.ctrl.Reset()
	st.acked = 0
	st.joined = r.join.everReady
}

// tick runs the repair schedule of origins with open gaps.
func (r *receiver) tick(now time.Time) {
	r.takeLater(now)
	p := r.repairParams()
	p.Grace = nackGrace * time.Duration(1+r.n.treeDepth())
	clk := r.clock(now)
	var t stream.Tally
	keep := r.pending[:0]
	for _, st := range r.pending {
		if st.s.Open() && r.unheard(st, now) && st.s.OldestMissingAge(clk) >= p.RepairTimeout {
			// The origin has declared us dead (it probes us): it sends us
			// no DATA and, while it cannot hear us, answers no NACK; what
			// is missing will expire unrepaired batch by batch, one Gap —
			// one flush — per announcement. Once the oldest has expired,
			// give it all up: a flush covers every sequence known missing
			// when it runs (each was published before we heard of it, so
			// what is loaded after the flush is newer).
			st.s.GiveUpAll(stream.Unreachable, clk, &t)
			r.settle(st, &t)
		}
		if st.s.Open() {
			fresh, retry := st.s.Due(clk, p, r.originGone(st, now), &t)
			if fresh != 0 {
				r.sendNack(st, fresh, now)
			}
			if retry != 0 {
				r.sendNack(st, retry, now)
			}
			r.settle(st, &t) // st.pending is set: nothing is appended while we iterate
		}
		if st.s.Open() {
			keep = append(keep, st)
		} else {
			st.pending = false
		}
	}
	clear(r.pending[len(keep):])
	r.pending = keep
	r.rewatch(now)
	r.flushGaps()
	r.n.timers.rxPending.Store(len(r.pending) > 0 || len(r.later) > 0)
}

// unheard reports whether the origin has declared us dead: it probed us
// with a CHALLENGE within the last two heartbeats (it probes its dead
// members every round while it publishes). Only in a direct mesh: in a
// relay tree other relays may still list us, and the frames still come.
func (r *receiver) unheard(st *originState, now time.Time) bool {
	return r.n.treeDepth() == 0 && !st.probedAt.IsZero() && now.Sub(st.probedAt) < 2*r.n.cfg.Heartbeat
}

// originGone reports whether an origin's open gaps are beyond repair
// because the origin is gone: it left, or it is dead and nothing at all has
// been heard from it for RepairTimeout. A member that only looked dead (a
// one-way partition: we did not hear it, it heard us) is NACKed again as
// soon as any of its frames arrives, before anything is given up.
func (r *receiver) originGone(st *originState, now time.Time) bool {
	m := r.n.members
	m.mu.Lock()
	state := StateAlive
	if e, ok := m.members[st.id]; ok {
		state = e.State
	}
	m.mu.Unlock()
	switch state {
	case StateLeft:
		return true
	case StateDead:
		return now.Sub(st.heard) >= r.n.cfg.RepairTimeout
	}
	return false
}

func (r *receiver) originAddr(id uint64) (netip.AddrPort, bool) {
	return r.n.members.validatedAddr(id) // never toward an unvalidated address
}

// sendNack asks for the missing ranges from seq from on: the origin, or
// in a relay tree first the tree parent (repairTarget).
func (r *receiver) sendNack(st *originState, from uint64, now time.Time) {
	to, ok := r.repairTarget(st, from, now)
	if !ok {
		st.s.NoRoute() // unknown origin: the timeout will flag it
		return
	}
	n := r.n
	maxRanges := codec.MaxNackRanges(n.cfg.MaxFrameSize, n.seal != nil)
	r.missing = st.s.AppendMissing(r.missing[:0], from, maxRanges)
	if len(r.missing) == 0 {
		return
	}
	r.ranges = r.ranges[:0]
	for _, rg := range r.missing {
		r.ranges = append(r.ranges, codec.SeqRange{First: rg.First, Last: rg.Last})
	}
	r.sendNackFrame(codec.Nack{Origin: st.id, Epoch: st.epoch()}, r.ranges, to)
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
