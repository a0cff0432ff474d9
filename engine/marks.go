package engine

import (
	"net/netip"
	"slices"
	"time"

	"github.com/warpmesh/warpmesh/codec"
)

// Stream marks: what a joiner owes an origin it hears of after it is ready.
//
// A ready node's caches may hold values an origin's frames invalidated, so
// an origin it first hears of after it became ready is owed from the
// first sequence the node cannot prove predates its caches. Before marks
// that was the epoch's first sequence: in a big mesh a node becomes ready
// knowing only part of it (the members its view held then), and when it
// later hears of an origin that has published thousands of frames, the
// origin's ring no longer holds them and the node raises a Gap — a flush,
// on a loss-free network (185 Gap events in the scale suite's 10% restart
// wave at N=1000).
//
// Every sequence some member knew was published before this node became
// ready predates its caches (nothing is stored before ready). So a node
// not ready yet asks one member at a time (JOIN of kind JoinMarks) for its
// stream marks: for each origin's epoch, the sequence up to which the
// member has every frame or has given it up, and its own last sequence
// sent. The answer (SYNC of kind SyncMarks, in as many parts as it takes)
// is kept; the node becomes ready only once one member's answer is whole
// (or none answered for SuspectAfter, as for JOIN asks). An origin heard
// of after readiness is then owed what follows its mark, not its whole
// epoch: frames published around the joiner's start, still in the
// origin's ring. Marks are taken only before ready and only from
// validated members; an answer is a lower bound, so a member that knows
// less costs repair, never a silent miss.
//
// Marks need a keyring. A mark is a member's word about other origins'
// streams, and one that lies (a mark past what was published) would make
// the joiner skip frames it never got: a stale read. In a plaintext mesh
// any node that owns an address can become a member, so there a node
// neither asks for marks nor waits for them, and is owed late origins
// from seq 1 as before (what their rings dropped is a Gap: a flush, never
// a stale read). A sealing node asks, and takes only authenticated
// answers: only key holders, trusted insiders, can give marks.
//
// Above DirectLimit a keyed node asks for marks only, no JOIN per member:
// every origin's stream starts after its mark (becomeReady rebases the
// ones heard of before), and what follows the mark and does not arrive is
// noticed from later frames and marks and repaired, as for any member. A
// JOIN answer would only spare the repair of frames between the mark and
// the origin's first frame sent to the joiner, at the price of N asks per
// joiner, retried every 200 ms while unanswered (3.4 M asks in the first
// 38 s of a staggered start of 2000 nodes).

const (
	joinMarksFirst   = 20 * time.Millisecond // first retry of an unanswered marks request
	marksFramesPerS  = 4096                  // SyncMarks frames this node answers with per second (burst as much)
	marksTableMargin = 16                    // marks kept beyond the origin table's cap (maxOrigins)
)

// putMark appends the answer's mark i (syncParts).
func (r *receiver) putMark(b []byte, i int) []byte { return codec.AppendTreeEntry(b, &r.marksOut[i]) }

// markFor is the sequence of origin's epoch up to which this node proved,
// before it became ready, that frames predate its caches (0: none).
func (r *receiver) markFor(origin, epoch uint64) uint64 {
	if m, ok := r.join.marks[origin]; ok && m.Epoch == epoch {
		r.n.ctr.marksUsed.Add(1)
		return m.Seq
	}
	return 0
}

// askMarks asks one member of view v for its stream marks while none has
// answered whole, with backoff, rotating to the next member on each
// retry; next is lowered to the retry time. r.mu is held.
func (r *receiver) askMarks(v *destView, now time.Time, next *time.Time) {
	j := &r.join
	if j.marksDone || len(v.ids) == 0 || !r.n.sealing() {
		return
	}
	a := &j.marksAsk
	if a.first.IsZero() {
		a.first = now
	}
	if a.waiting(now, next) {
		return
	}
	a.sent(now, joinMarksFirst, next)
	i := j.marksTurn % len(v.ids)
	j.marksTurn++
	if v.ids[i] != j.marksFrom {
		j.marksFrom, j.marksGot = v.ids[i], j.marksGot[:0]
	}
	r.sendJoin(codec.Join{Kind: codec.JoinMarks, Member: v.ids[i]}, v.live[i])
	r.n.ctr.marksAsksSent.Add(1)
}

// marksWait reports whether readiness still waits for a whole marks
// answer: the node seals its frames (marks need a keyring), none has
// come, the view names members to ask, and they have been asked for less
// than wait. r.mu is held.
func (r *receiver) marksWait(v *destView, now time.Time, wait time.Duration, next *time.Time) bool {
	j := &r.join
	if j.marksDone || len(v.ids) == 0 || !r.n.sealing() {
		return false
	}
	if j.marksAsk.first.IsZero() {
		return true
	}
	end := j.marksAsk.first.Add(wait)
	if !now.Before(end) {
		return false // nobody answered for SuspectAfter: ready without marks
	}
	sooner(next, end)
	return true
}

// handleMarks takes one part of a member's marks while this node is not
// ready: each mark is kept (the highest of the newest epoch per origin),
// and a whole answer from the member last asked lets readiness go on.
// Only an authenticated answer is read (a plaintext one is dropped as
// DropUnauthenticated, whatever the Auth mode). r.mu is held.
func (r *receiver) handleMarks(h *codec.Header, payload []byte) {
	n := r.n
	s, off, err := codec.ParseSync(payload)
	if err != nil {
		n.ctr.drop(DropMalformed)
		return
	}
	if h.Flags&codec.FlagAuth == 0 {
		n.ctr.drop(DropUnauthenticated)
		return
	}
	j := &r.join
	if j.everReady {
		return // a mark proves something only about frames before readiness
	}
	if _, ok := n.members.validatedAddr(h.Origin); !ok {
		n.ctr.drop(DropUnknownMember)
		return
	}
	if j.marks == nil {
		j.marks = make(map[uint64]codec.TreeEntry)
	}
	rest := payload[off:]
	for i := 0; i < int(h.Count); i++ {
		e, m, err := codec.ParseTreeEntry(rest)
		if err != nil {
			n.ctr.drop(DropMalformed)
			return
		}
		rest = rest[m:]
		if e.Origin == n.id {
			continue
		}
		cur, ok := j.marks[e.Origin]
		if !ok && len(j.marks) >= maxOrigins+marksTableMargin {
			continue // bounded like the origin table; the rest is owed from seq 1
		}
		if !ok || e.Epoch > cur.Epoch || (e.Epoch == cur.Epoch && e.Seq > cur.Seq) {
			j.marks[e.Origin] = e
		}
	}
	if h.Origin != j.marksFrom {
		return // kept, but only the member last asked completes the answer
	}
	if len(j.marksGot) != int(s.Parts) {
		j.marksGot = append(j.marksGot[:0], make([]bool, s.Parts)...)
	}
	j.marksGot[s.Part] = true
	if !slices.Contains(j.marksGot, false) {
		j.marksDone = true
		j.next = time.Time{} // check readiness at the next tick
		n.timers.kick()
	}
}

// sendMarks answers a marks request from a validated member with this
// node's marks, when it seals its frames: its own last sequence sent and, for every member origin,
// the sequence up to which its stream has every frame or gave it up.
// Answers share a budget of marksFramesPerS frames per second; one that
// does not fit is not sent (the asker asks again). r.mu is held.
func (r *receiver) sendMarks(to netip.AddrPort, now time.Time) {
	n := r.n
	if !n.sealing() {
		return // a plaintext answer would not be read (handleMarks)
	}
	out := r.marksOut[:0]
	n.joins.mu.Lock()
	own := n.joins.usedTo
	n.joins.mu.Unlock()
	if own > 0 {
		out = append(out, codec.TreeEntry{Origin: n.id, Epoch: n.epoch, Seq: own})
	}
	for id, st := range r.origins {
		if !st.stranger && st.cum() > 0 {
			out = append(out, codec.TreeEntry{Origin: id, Epoch: st.epoch(), Seq: st.cum()})
		}
	}
	r.marksOut = out
	per := n.syncPer(codec.TreeEntryLen)
	if parts := max((len(out)+per-1)/per, 1); !r.marksBudget.takeN(now, float64(parts)) {
		n.ctr.marksRefused.Add(1)
		return
	}
	r.marksMsgs = n.syncParts(codec.SyncMarks, len(out), codec.TreeEntryLen, r.putMark, &r.marksBufs, r.marksMsgs, &r.sc, to)
	n.writeBatched(r.marksMsgs)
	n.ctr.marksAnswersSent.Add(1)
}
