package engine

import (
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/warpmesh/warpmesh/codec"
	"github.com/warpmesh/warpmesh/sockopt"
)

// Flow control. UDP has none: an origin that outruns a receiver overflows
// the receiver's socket buffer and pays with repairs. So receivers report
// their progress (ACK: every sequence up to cum applied) every ackEvery
// frames or ackInterval, and the origin keeps at most a window of frames
// in flight beyond the slowest progress reported to it.
//
// In a direct mesh (at most DirectLimit members) every receiver reports
// to the origin, and the window is FlowWindow beyond the slowest live
// receiver's report. In a relay tree, where that would implode on the
// origin, the reports go hop by hop: a receiver ACKs its tree parent for
// that origin (the origin itself for the origin's own children), and
// each relay reports, for its whole subtree, its own progress lowered to
// the slowest report of its tree children (engine/internal/flowtree; at
// most Fanout per origin, and only from a member that is our tree child
// for that origin in our view — any other ACK is dropped and counted,
// DropTreeRefused). The origin hears from its own Fanout children only
// and keeps its window to them: FlowWindow plus ackEvery per tree level,
// the progress each hop may hold back before it reports. Relays hold no
// queue and are not held back themselves: the origin is.
//
// A receiver that never reported (just joined, or an older node) does not
// hold the origin back, and no wait lasts longer than flowMaxWait. A
// receiver that let a wait run out is waived: it does not hold the origin
// back again until it reports progress. So a receiver that stops
// answering costs the origin one flowMaxWait, not one per flush until
// failure detection removes it — which matters when it is the origin that
// cannot hear (an inbound-only cut on its side: every receiver's ACKs are
// lost, and for DeadAfter every flush, every invalidation the application
// publishes, would wait the full flowMaxWait). A receiver that is only
// slow keeps reporting, is held to the window again from its next report,
// and is waived again only by another timeout. In a relay tree the
// origin's waiver of a child of its own also ends once it sends past
// window·(2^k − 1) frames beyond the wait (k: waits for that child that
// ran out since its progress; see waive): the child is most often a
// relay whose subtree is slow to report through its queues, and an
// exemption until its next report let the origin pour the whole publish
// ring into that subtree, overflowing it. A relay, for its part, leaves
// out a child whose report has been behind its own progress, without
// advancing, for flowStale: a silent or dead node deep in the tree costs
// the origin a few bounded waits (its ancestor among the origin's
// children is exempted as above until the relay above the silent node
// leaves it out and reports progress again; 3 waits ran out in
// engine/memnet TestFlowStalledSubtreeWaived), not one per flush.
//
// What it buys (engine/memnet TestFlowSlowSubtree: 16 nodes, a node two
// hops down reading about 8 datagrams per ms from a 256-datagram queue,
// 1438 frames published at full speed): without flow control 660-1370
// datagrams overflow its queue and its subtree sends 60-95 NACKs; with a
// FlowWindow of 64 the origin waits about 22 times, none runs out, and
// nothing overflows. A subtree that cannot take one flush (up to 64
// frames) per flowMaxWait is not protected: the waits run out, and it is
// repaired as without flow control, at a bounded cost to the origin.

const (
	ackEvery    = 16                    // frames between a receiver's ACKs under load
	ackInterval = 5 * time.Millisecond  // at most this long between ACKs at low load
	flowMaxWait = 20 * time.Millisecond // longest single wait for ACKs
	// flowStale: a tree child whose report, behind the relay's own
	// progress, has not advanced this long holds no one back until it
	// reports progress (a live child under load reports every ackEvery
	// frames).
	flowStale = 4 * flowMaxWait
	// flowMaxBackoff caps the doubling of a tree child's exemption
	// after waits for it ran out (window·(2^16 − 1) frames).
	flowMaxBackoff = 16
)

// flowState is the origin's view of its receivers' progress.
type flowState struct {
	mu     sync.Mutex
	acked  map[uint64]flowReport // member id → its progress on our epoch
	signal chan struct{}         // a report arrived (cap 1)
}

// flowReport is one receiver's last progress report.
type flowReport struct {
	cum    uint64 // every sequence up to cum applied
	waived bool   // direct mesh: a wait for it ran out; it holds no one back until it reports progress
	// Relay tree: waits for it ran out, backoff of them since its last
	// progress; it holds no one back while we send no further than until
	// (see waive).
	until   uint64
	backoff uint8
}

// exempt reports whether r holds no one back from sending through seq.
func (r flowReport) exempt(seq uint64) bool { return r.waived || seq <= r.until }

func (f *flowState) init() {
	f.acked = make(map[uint64]flowReport)
	f.signal = make(chan struct{}, 1)
}

// report records a receiver's progress (worker goroutine). Progress ends
// a waiver.
func (f *flowState) report(member, cum uint64) {
	f.mu.Lock()
	if r, ok := f.acked[member]; !ok || cum > r.cum {
		f.acked[member] = flowReport{cum: cum}
	}
	f.mu.Unlock()
	select {
	case f.signal <- struct{}{}:
	default:
	}
}

// forget drops a member's progress report (it left the fan-out).
func (f *flowState) forget(member uint64) {
	f.mu.Lock()
	delete(f.acked, member)
	f.mu.Unlock()
}

// slowest returns the lowest progress among the members ids (those that
// bound the window) that have reported and are not waived for sending
// through seq, and whether any has.
func (f *flowState) slowest(ids []uint64, seq uint64) (uint64, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var low uint64
	found := false
	for _, id := range ids {
		if r, ok := f.acked[id]; ok && !r.exempt(seq) && (!found || r.cum < low) {
			low, found = r.cum, true
		}
	}
	return low, found
}

// waive exempts the members among ids that still hold seq back (their
// report plus window is short of it) after a wait for them ran out. In a
// direct mesh the exemption lasts until the member reports progress. In a
// relay tree, where a report comes through every hop's queue and a child
// of ours that is slow to report is most often a relay whose subtree is
// slow rather than a dead member (a relay leaves a silent child out
// itself: flowtree), it lasts until then or until we send past
// seq + window·(2^k − 1), k counting the waits for it that ran out since
// its last progress (the first lets through only the flush that waited):
// a slow subtree is not then flooded with everything the publish ring
// holds, and a dead child costs one wait per doubling, not one per flush.
func (f *flowState) waive(ids []uint64, seq, window uint64, tree bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range ids {
		r, ok := f.acked[id]
		if !ok || r.exempt(seq) || seq <= r.cum+window {
			continue
		}
		if tree {
			r.until = seq + window*(1<<min(r.backoff, flowMaxBackoff)-1)
			r.backoff++
		} else {
			r.waived = true
		}
		f.acked[id] = r
	}
}

// awaitWindow holds the sender until sending through seq keeps the frames
// in flight within the window, or flowMaxWait passes; then the receivers
// it waited for are waived (see flowState). In a direct mesh the window
// bounds every live member; in a relay tree, our tree children, each
// reporting for its subtree.
func (s *sender) awaitWindow(v *destView, seq uint64) {
	n := s.n
	if n.cfg.FlowWindow <= 0 || len(v.live) == 0 {
		return
	}
	ids, window := v.ids, uint64(n.cfg.FlowWindow)
	tree := len(v.live) > n.cfg.DirectLimit
	var kids [64]uint64 // Fanout is at most 64
	if tree {
		ids = ownTreeChildren(v, n.id, n.cfg.Fanout, kids[:0])
		window += ackEvery * uint64(treeLevels(len(v.live), n.cfg.Fanout))
	}
	var deadline time.Time
	for {
		low, ok := n.flow.slowest(ids, seq)
		if !ok || seq <= low+window {
			return
		}
		now := time.Now()
		if deadline.IsZero() {
			deadline = now.Add(flowMaxWait)
			n.ctr.flowWaits.Add(1)
		}
		if !now.Before(deadline) {
			n.ctr.flowTimeouts.Add(1)
			n.flow.waive(ids, seq, window, tree)
			return
		}
		s.timer.Reset(deadline.Sub(now))
		select {
		case <-n.flow.signal:
			if !s.timer.Stop() {
				<-s.timer.C
			}
		case <-s.timer.C:
		}
	}
}

// ownTreeChildren appends the ids of self's children in its own relay
// tree (treeChildren with origin self: ring positions 1 … fanout from
// self).
func ownTreeChildren(v *destView, self uint64, fanout int, dst []uint64) []uint64 {
	ids := v.ids
	n := len(ids) + 1
	selfIdx, _ := slices.BinarySearch(ids, self)
	for c := 1; c <= fanout && c < n; c++ {
		j := (selfIdx + c) % n
		if j > selfIdx {
			j--
		}
		dst = append(dst, ids[j])
	}
	return dst
}

// treeChildOf reports whether member is one of self's children in
// origin's relay tree as v orders it (treeChildren): the only member whose
// progress reports on origin's stream self takes.
func treeChildOf(v *destView, self, origin, member uint64, fanout int) bool {
	ids := v.ids
	n := len(ids) + 1
	ring := func(id uint64) (int, bool) { // position on the ring that counts self
		i, ok := slices.BinarySearch(ids, id)
		if self < id {
			i++
		}
		return i, ok
	}
	selfIdx, _ := slices.BinarySearch(ids, self)
	o, ok := selfIdx, true
	if origin != self {
		o, ok = ring(origin)
	}
	m, okm := ring(member)
	if !ok || !okm || member == origin || member == self {
		return false
	}
	p := (selfIdx - o + n) % n
	c := (m - o + n) % n
	return c > p*fanout && c <= p*fanout+fanout
}

// treeLevels is the depth of a relay tree over live members plus self
// (treeDepth, for a view's size).
func treeLevels(live, fanout int) int {
	d, reach := 0, 1
	for reach < live+1 {
		reach = reach*fanout + 1
		d++
	}
	return d
}

// ---- receiver side (worker, under receiver.mu) ----

// ackDue notes that an origin's progress may need reporting.
func (r *receiver) ackDue(st *originState) {
	if !st.ackQueued && st.cum() > st.acked {
		st.ackQueued = true
		r.acks = append(r.acks, st)
	}
}

// sendAcks reports progress to the origins touched by this batch: in a
// direct mesh to the origin itself, in a relay tree to our tree parent
// for that origin (the origin, for its own children), for our subtree.
func (r *receiver) sendAcks(now time.Time) {
	if len(r.acks) == 0 {
		return
	}
	n := r.n
	v := r.treeView()
	for _, st := range r.acks {
		st.ackQueued = false
		cum := st.cum()
		if v != nil {
			cum = r.tree.flow.Progress(st.id, st.epoch(), cum, now)
		}
		if cum <= st.acked || (cum-st.acked < ackEvery && now.Sub(st.lastAck) < ackInterval) {
			continue
		}
		to, ok := r.ackTarget(v, st.id)
		if !ok {
			continue
		}
		st.acked, st.lastAck = cum, now
		h := n.controlHeader(codec.TypeAck)
		h.PayloadLen = codec.AckLen
		b := codec.AppendHeader(r.ackBuf[:0], &h)
		b = codec.AppendAck(b, &codec.Ack{Origin: st.id, Epoch: st.epoch(), Cum: cum})
		b = n.sealFrame(b, &h, &r.sc)
		r.ackBuf = b
		r.ackMsg[0] = sockopt.Message{Buf: b, Addr: to}
		n.write(r.ackMsg[:1])
		n.ctr.acksSent.Add(1)
	}
	clear(r.acks)
	r.acks = r.acks[:0]
}

// ackTarget is where progress on origin's stream is reported: in a relay
// tree (v not nil) our tree parent for it, or the origin for its own
// children, at their addresses in the view the frames follow; in a
// direct mesh, the origin.
func (r *receiver) ackTarget(v *destView, origin uint64) (netip.AddrPort, bool) {
	if v != nil {
		if to, _, ok := treeParent(v, r.n.id, origin, r.n.cfg.Fanout); ok {
			return to, true
		}
		if i, ok := slices.BinarySearch(v.ids, origin); ok {
			return v.live[i], true
		}
	}
	return r.originAddr(origin)
}

// ack handles a progress report: a receiver's on our stream (in a relay
// tree, one of our tree children's, for its subtree), or in a relay tree
// a tree child's on another origin's stream, which may raise what we
// report up for it. A report about another origin from a member that is
// not our tree child for it in our view, or about an origin or epoch we
// have no stream for, is dropped and counted (DropTreeRefused).
func (r *receiver) ack(h *codec.Header, payload []byte, now time.Time) {
	n := r.n
	a, _, err := codec.ParseAck(payload)
	if err != nil {
		n.ctr.drop(DropMalformed)
		return
	}
	if a.Origin == n.id {
		if a.Epoch != n.epoch {
			return // our earlier life
		}
		n.ctr.acksReceived.Add(1)
		n.flow.report(h.Origin, a.Cum)
		return
	}
	v := r.treeView()
	st := r.origins[a.Origin]
	if v == nil || st == nil || st.epoch() != a.Epoch ||
		!treeChildOf(v, n.id, a.Origin, h.Origin, n.cfg.Fanout) ||
		!r.tree.flow.Report(a.Origin, a.Epoch, h.Origin, a.Cum, now) {
		n.ctr.drop(DropTreeRefused)
		return
	}
	n.ctr.acksReceived.Add(1)
	r.ackDue(st)
}
