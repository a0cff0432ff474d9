package engine

import (
	"sync"
	"time"

	"github.com/warpmesh/warpmesh/codec"
	"github.com/warpmesh/warpmesh/sockopt"
)

// Flow control. UDP has none: an origin that outruns a receiver overflows
// the receiver's socket buffer and pays with repairs. So each receiver of
// an origin's direct stream reports its progress (ACK: every sequence up to
// cum applied) every ackEvery frames or ackInterval, and the origin keeps
// at most FlowWindow frames in flight beyond its slowest live receiver's
// report. A receiver that never reported (just joined, or an older node)
// does not hold the origin back, and no wait lasts longer than flowMaxWait.
// A receiver that let a wait run out is waived: it does not hold the origin
// back again until it reports progress. So a receiver that stops answering
// costs the origin one flowMaxWait, not one per flush until failure
// detection removes it — which matters when it is the origin that cannot
// hear (an inbound-only cut on its side: every receiver's ACKs are lost,
// and for DeadAfter every flush, every invalidation the application
// publishes, would wait the full flowMaxWait). A receiver that is only
// slow keeps reporting, is held to the window again from its next
// report, and is waived again only by another timeout. Relay trees
// (meshes above DirectLimit) are not flow-controlled: acknowledgements
// would implode on the origin.

const (
	ackEvery    = 16                    // frames between a receiver's ACKs under load
	ackInterval = 5 * time.Millisecond  // at most this long between ACKs at low load
	flowMaxWait = 20 * time.Millisecond // longest single wait for ACKs
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
	waived bool   // a wait for it ran out; it holds no one back until it reports progress
}

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

// slowest returns the lowest progress among the live members that have
// reported and are not waived, and whether any has.
func (f *flowState) slowest(v *destView) (uint64, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var low uint64
	found := false
	for _, id := range v.ids {
		if r, ok := f.acked[id]; ok && !r.waived && (!found || r.cum < low) {
			low, found = r.cum, true
		}
	}
	return low, found
}

// waive exempts the live members that still hold seq back (their report
// plus window is short of it) after a wait for them ran out.
func (f *flowState) waive(v *destView, seq, window uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range v.ids {
		if r, ok := f.acked[id]; ok && !r.waived && seq > r.cum+window {
			r.waived = true
			f.acked[id] = r
		}
	}
}

// awaitWindow holds the sender until sending through seq keeps the frames
// in flight within the window, or flowMaxWait passes; then the receivers
// it waited for are waived (see flowState).
func (s *sender) awaitWindow(v *destView, seq uint64) {
	n := s.n
	if n.cfg.FlowWindow <= 0 || len(v.live) == 0 || len(v.live) > n.cfg.DirectLimit {
		return
	}
	var deadline time.Time
	for {
		low, ok := n.flow.slowest(v)
		if !ok || seq <= low+uint64(n.cfg.FlowWindow) {
			return
		}
		now := time.Now()
		if deadline.IsZero() {
			deadline = now.Add(flowMaxWait)
			n.ctr.flowWaits.Add(1)
		}
		if !now.Before(deadline) {
			n.ctr.flowTimeouts.Add(1)
			n.flow.waive(v, seq, uint64(n.cfg.FlowWindow))
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

// ---- receiver side (worker, under receiver.mu) ----

// ackDue notes that an origin's progress may need reporting.
func (r *receiver) ackDue(st *originState) {
	if !st.ackQueued && st.cum() > st.acked {
		st.ackQueued = true
		r.acks = append(r.acks, st)
	}
}

// sendAcks reports progress to the origins touched by this batch.
func (r *receiver) sendAcks(now time.Time) {
	if len(r.acks) == 0 {
		return
	}
	n := r.n
	direct := n.treeDepth() == 0
	for _, st := range r.acks {
		st.ackQueued = false
		cum := st.cum()
		if !direct || cum <= st.acked || (cum-st.acked < ackEvery && now.Sub(st.lastAck) < ackInterval) {
			continue
		}
		to, ok := r.originAddr(st.id)
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

// ack handles a receiver's progress report on our stream.
func (r *receiver) ack(h *codec.Header, payload []byte) {
	a, _, err := codec.ParseAck(payload)
	if err != nil {
		r.n.ctr.drop(DropMalformed)
		return
	}
	if a.Origin != r.n.id || a.Epoch != r.n.epoch {
		return // about another origin, or our earlier life
	}
	r.n.ctr.acksReceived.Add(1)
	r.n.flow.report(h.Origin, a.Cum)
}
