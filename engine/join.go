package engine

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/warpmesh/warpmesh/codec"
	"github.com/warpmesh/warpmesh/sockopt"
)

// Joining without a window.
//
// A node that starts while others publish must never take an invalidation
// it did not receive as "not meant for me" unless it provably was not. Two
// sides close the window:
//
//   - The origin knows, per member, the first sequence it sent with a
//     fan-out view that held that member (joinTable, stamped by the sender
//     when it adopts a new view). A receiver asks for it (JOIN ask) and
//     the origin answers (JOIN answer, "from seq J on every DATA frame of
//     this epoch goes to you"). From then on the receiver repairs or flags
//     everything from J; nothing before J was meant for it.
//   - The receiver is *ready* once it knows J for every live member and
//     one member has told it its stream marks (marks.go), or the mesh is
//     empty after a short discovery grace. A member that leaves the asks
//     unanswered for SuspectAfter (killed, and listed alive by the others
//     until DeadAfter) stops holding readiness back and is treated as an
//     origin heard of after it (below); so does a marks request nobody
//     answers for that long. Until then the preset stores nothing it
//     loads, so nothing it holds can predate an invalidation it missed.
//     Readiness is sticky: an origin first heard of after that moment is
//     expected from just after the mark a member gave for it, or from its
//     epoch's first sequence without one, since the node's caches may
//     already hold values its later frames invalidated; what the origin
//     can no longer retransmit becomes a Gap (and a flush). A young
//     origin's retransmit ring still holds its whole history, so a
//     restarting node costs no Gap anywhere.
//
// A mass restart (every node new) therefore converges without Gaps: every
// receiver is fresh and is owed only from its J; a rolling restart costs
// the new node nothing and the old ones one NACK round for the young
// origin's first frames.

const (
	joinAskFirst = 2 * time.Millisecond   // first retry of an unanswered ask
	joinAskMax   = 200 * time.Millisecond // cap of the ask backoff
	joinTick     = 2 * time.Millisecond   // readiness check period while not ready
	readyGraceLo = 50 * time.Millisecond  // an empty mesh is ready after clamp(Heartbeat, lo, hi)
	readyGraceHi = time.Second
)

// joinTable is the origin side: from which sequence each member of the
// fan-out was sent our DATA frames. The sender stamps it when a flush
// adopts a new view; the receive worker reads it to answer JOIN asks.
type joinTable struct {
	mu     sync.Mutex
	used   *destView         // the view of the latest flush (in flight or done)
	usedTo uint64            // the last sequence sent with it
	from   map[uint64]uint64 // member id → first sequence sent to it
}

func (j *joinTable) init() { j.from = make(map[uint64]uint64) }

// adopt returns the view a flush of sequences [first, last] goes out with,
// stamping members that enter the fan-out with first. It does not allocate
// unless the view changed (membership changes are rare).
func (j *joinTable) adopt(m *membership, f *flowState, first, last uint64) *destView {
	j.mu.Lock()
	v := m.view.Load()
	if v != j.used {
		for _, id := range v.ids {
			if _, ok := j.from[id]; !ok {
				j.from[id] = first
			}
		}
		for id := range j.from {
			if _, ok := slices.BinarySearch(v.ids, id); !ok {
				delete(j.from, id)
				// Out of the fan-out: its old progress report must not hold
				// the origin back should it come back (after a partition it
				// is far behind until it has repaired); until it reports
				// again it counts as a receiver that never reported.
				f.forget(id)
			}
		}
		j.used = v
	}
	j.usedTo = last
	j.mu.Unlock()
	return v
}

// fromFor answers a JOIN ask: the first sequence member is (or, for a
// member that entered the view since the last flush, will be) sent, and
// its address in the view. ok is false for a node outside the fan-out.
func (j *joinTable) fromFor(m *membership, member uint64) (from uint64, addr netip.AddrPort, ok bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	addr, in := m.viewMember(member) // as view.Load would say, without publishing
	if !in {
		return 0, netip.AddrPort{}, false
	}
	f, known := j.from[member]
	if !known {
		// Every flush from now on loads this view or a later one, and
		// sequences are contiguous: the next one sent is usedTo+1.
		f = j.usedTo + 1
		j.from[member] = f
	}
	return f, addr, true
}

// readiness is the node's coherence state (receiver side), under r.mu
// except the atomic flag and channel, which Node.Ready reads.
type readiness struct {
	everReady bool               // sticky: became ready once
	asked     map[uint64]joinAsk // member id → its last ask (while not ready)
	buf       []byte
	msg       [1]sockopt.Message
	view      *destView // view of the last check
	next      time.Time // no check before this unless the view changes or an answer arrives

	// Stream marks (marks.go): what members knew was published before
	// this node was ready; kept after readiness for origins heard of later.
	marks     map[uint64]codec.TreeEntry // origin → its newest epoch's highest mark
	marksAsk  joinAsk                    // first and last marks request, backoff
	marksTurn int                        // rotates the member asked
	marksFrom uint64                     // the member last asked: its answer completes the wait
	marksGot  []bool                     // parts of its answer received
	marksDone bool                       // a whole answer arrived
}

// joinAsk is when a member was first and last asked, and how long until
// it is asked again.
type joinAsk struct {
	first, at time.Time
	backoff   time.Duration
}

// waiting reports whether the last ask is not due for a retry at now,
// lowering next to when it is.
func (a *joinAsk) waiting(now time.Time, next *time.Time) bool {
	if now.Sub(a.at) < a.backoff {
		sooner(next, a.at.Add(a.backoff))
		return true
	}
	return false
}

// sent records an ask sent at now: the backoff doubles from first up to
// joinAskMax, and next is lowered to the retry.
func (a *joinAsk) sent(now time.Time, first time.Duration, next *time.Time) {
	a.at = now
	a.backoff = min(max(2*a.backoff, first), joinAskMax)
	sooner(next, now.Add(a.backoff))
}

// sooner lowers *next to t if t is earlier.
func sooner(next *time.Time, t time.Time) {
	if t.Before(*next) {
		*next = t
	}
}

// Ready reports whether the node is coherent with the mesh: every live
// member has told it from which sequence it is in that member's fan-out,
// or left its asks unanswered for SuspectAfter and is expected from its
// epoch's first sequence, and one member has given it its stream marks
// (or the mesh was empty for a short discovery grace after New). Once
// true it stays true: origins heard of later are expected from just after
// their mark, or from their epoch's first sequence, and what cannot be
// repaired raises a Gap. presets stores nothing it loads while a node is not
// ready. It does not allocate.
func (n *Node) Ready() bool { return n.ready.Load() }

// WaitReady blocks until the node is ready (see Ready), ctx is done, or
// the node closes (ErrClosed).
func (n *Node) WaitReady(ctx context.Context) error {
	select {
	case <-n.readyCh:
		return nil
	default:
	}
	select {
	case <-n.readyCh:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-n.ctx.Done():
		return ErrClosed
	}
}

// joinCheck runs while the node is not ready (timers goroutine): it asks
// every live member without an answer, with backoff, and declares the node
// ready when every one has answered — or has left its asks unanswered for
// SuspectAfter (a killed member others still list until DeadAfter would
// otherwise keep a new node's caches passing every load through for that
// long) — and, with a keyring, one member has given its stream marks. A
// keyed node in a mesh above DirectLimit asks for marks only.
func (r *receiver) joinCheck(now time.Time) {
	n := r.n
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.join.everReady {
		return
	}
	v := n.members.view.Load()
	if v == r.join.view && now.Before(r.join.next) {
		return // nothing due: no new member, no answer, no retry
	}
	r.join.view = v
	next := now.Add(joinAskMax)
	missing := 0
	wait := n.cfg.SuspectAfter
	// In a keyed mesh above DirectLimit the marks answer alone makes the
	// node ready (marks.go): a JOIN ask per member would be N frames (and
	// retries) per joiner, while relay trees send it frames from wherever
	// their views stand anyway.
	ids := v.ids
	if n.sealing() && n.members.swimming() {
		ids = nil
	}
	for i, id := range ids {
		if st := r.origins[id]; st != nil && st.joined {
			continue
		}
		a, asked := r.join.asked[id]
		if asked && now.Sub(a.first) >= wait {
			// Unanswered for SuspectAfter: most likely gone (killed, and
			// still listed alive by the others until DeadAfter). It holds
			// readiness back no longer; like an origin first heard of
			// after readiness, it is then expected from its epoch's first
			// sequence (becomeReady), so what it published is repaired
			// from its ring or flagged, never taken silently.
			continue
		}
		missing++
		if asked {
			sooner(&next, a.first.Add(wait))
			if a.waiting(now, &next) {
				continue
			}
		} else {
			a.first = now
			sooner(&next, now.Add(wait))
		}
		a.sent(now, joinAskFirst, &next)
		r.join.asked[id] = a
		r.sendJoin(codec.Join{Kind: codec.JoinAsk, Member: id}, v.live[i])
		n.ctr.joinAsksSent.Add(1)
	}
	grace := min(max(n.cfg.Heartbeat, readyGraceLo), readyGraceHi)
	if len(v.ids) == 0 {
		sooner(&next, r.born.Add(grace))
	}
	r.askMarks(v, now, &next)
	wait4marks := r.marksWait(v, now, wait, &next)
	r.join.next = next
	if missing > 0 || wait4marks || (len(v.ids) == 0 && now.Sub(r.born) < grace) {
		return
	}
	r.becomeReady(now)
}

// becomeReady marks the node coherent. Streams still without an answer
// (origins outside the view, heard of in passing) are from now on expected
// from just after a member's mark for them (marks.go), or from their
// epoch's first sequence.
func (r *receiver) becomeReady(now time.Time) {
	n := r.n
	r.join.everReady = true
	r.join.asked = nil
	for id, st := range r.origins {
		if !st.joined {
			st.joined = true
			r.rebase(st, r.markFor(id, st.epoch()), now)
		}
	}
	r.flushGaps()
	n.ready.Store(true)
	close(n.readyCh)
	n.events.push(Event{Type: EventReady})
}

// handleJoin handles a JOIN frame: an ask for our fan-out position, or an
// origin's answer about ours in its fan-out.
func (r *receiver) handleJoin(h *codec.Header, payload []byte, now time.Time) {
	n := r.n
	j, _, err := codec.ParseJoin(payload)
	if err != nil {
		n.ctr.drop(DropMalformed)
		return
	}
	switch j.Kind {
	case codec.JoinAsk:
		if j.Member != n.id {
			return // not about us
		}
		from, to, ok := n.joins.fromFor(n.members, h.Origin)
		if !ok {
			return // not in our fan-out yet: it asks again
		}
		r.sendJoin(codec.Join{Kind: codec.JoinAnswer, Member: h.Origin, From: from}, to)
		n.ctr.joinAnswersSent.Add(1)
	case codec.JoinMarks:
		if j.Member != n.id {
			return
		}
		if to, ok := n.members.validatedAddr(h.Origin); ok {
			r.sendMarks(to, now)
		}
	case codec.JoinAnswer:
		if j.Member != n.id {
			return
		}
		st := r.origins[h.Origin]
		if st == nil || st.epoch() != h.Epoch || st.joined {
			return // control() made the state; a repeat answer changes nothing
		}
		st.joined = true
		r.rebase(st, j.From-1, now)
		r.join.next = time.Time{} // check readiness at the next tick
		n.timers.kick()
	}
}

// startCum is where a new stream's expectations start: a node that was
// ever ready expects every sequence of an epoch it first hears of after
// the mark a member gave it before it was ready (marks.go), or from seq 1;
// a fresh one starts at what it sees and learns the rest from the JOIN
// answer.
func (r *receiver) startCum(origin, epoch, seen uint64) uint64 {
	if r.join.everReady {
		return r.markFor(origin, epoch)
	}
	return seen
}

// sendJoin sends one JOIN frame; r.mu is held.
func (r *receiver) sendJoin(j codec.Join, to netip.AddrPort) {
	n := r.n
	h := n.controlHeader(codec.TypeJoin)
	h.PayloadLen = codec.JoinLen
	b := codec.AppendHeader(r.join.buf[:0], &h)
	b = codec.AppendJoin(b, &j)
	b = n.sealFrame(b, &h, &r.sc)
	r.join.buf = b
	r.join.msg[0] = sockopt.Message{Buf: b, Addr: to}
	n.write(r.join.msg[:1])
}
