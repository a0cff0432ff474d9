package engine

import (
	"net/netip"
	"slices"
	"time"

	"github.com/warpmesh/warpmesh/codec"
	"github.com/warpmesh/warpmesh/engine/internal/flowtree"
	"github.com/warpmesh/warpmesh/engine/internal/plumtree"
	"github.com/warpmesh/warpmesh/engine/internal/stream"
	"github.com/warpmesh/warpmesh/sockopt"
)

// Healing the relay tree: Plumtree's lazy push, driven here, decided by
// engine/internal/plumtree.
//
// The eager push is the origin-rooted tree of fanout.go. It is exact while
// members' views agree; where they disagree (a member some nodes have not
// validated yet, or cannot reach) a node may be relayed to twice, or by no
// one. So, in meshes above DirectLimit:
//
//   - every node announces, at most every treeIHaveInterval, the origins
//     whose frames it holds further than it last said (IHAVE: origin,
//     epoch, the seq below which it holds everything) to treeLazyPeers
//     members taken in turn over its view;
//   - a node told of frames it lacks takes the mark like any high-water
//     mark (the stream's repair and Gap rules then answer for them), and
//     if they have not arrived after treeGraftTimeout, or its repair gave
//     up on its tree parent first, it GRAFTs the announcer, which resends them from its relay ring and pushes that
//     origin's frames to it from then on, as an extra tree child;
//   - a node given a frame twice PRUNEs the sender when it is not its tree
//     parent (at most once per origin per treePruneHold), which then skips
//     it for that origin. The origin's own sends are never pruned: its
//     sender does not take the receive lock.
//
// Grafts and prunes hold until the view changes; the new tree is tried
// first. IHAVE, GRAFT and PRUNE are taken only from validated members (the
// control path's admission), and entries about origins or epochs this
// node has no stream for, or beyond a table's cap, are dropped and
// counted (DropTreeRefused). All of it runs under receiver.mu.

// treeState is the receiver's Plumtree driver state.
type treeState struct {
	m       *plumtree.Machine
	flow    *flowtree.Table // our tree children's progress reports (flow.go)
	view    *destView       // the view the machine's grafts and prunes belong to
	acts    []plumtree.Action
	entries []codec.TreeEntry
	graft   [1]codec.TreeEntry
	dests   []netip.AddrPort
	buf     []byte
	msgs    []sockopt.Message
	turn    int // rotation over the view for lazy peers (from a place of our own)
	// fed holds when the latest first copy came, and from which origin,
	// then the latest of another origin (see treeHold).
	fed [2]fedMark
	// pending, when the transport can tell, counts the datagrams waiting
	// in its receive queue, unread (memnet.Endpoint.Pending); probed once.
	pending interface{ Pending() int }
	probed  bool
}

// backlog is how many datagrams wait unread in n's transport's receive
// queue (0 when it cannot tell).
func (t *treeState) backlog(n *Node) int {
	if !t.probed {
		t.pending, _ = n.uni.(interface{ Pending() int })
		t.probed = true
	}
	if t.pending == nil {
		return 0
	}
	return t.pending.Pending()
}

type fedMark struct {
	origin uint64
	at     time.Time
}

func (t *treeState) init(frameSize int, self uint64, fanout int) {
	// Lazy peers are taken in turn from a place of this node's own, so
	// that nodes do not all announce to the same few members first.
	t.turn = int(self % 65521)
	t.m = plumtree.New(plumtree.Params{
		AnnounceInterval: treeIHaveInterval,
		GraftTimeout:     treeGraftTimeout,
		GraftGiveUp:      treeGraftGiveUp,
		PruneHold:        treePruneHold,
		MaxOrigins:       treeMaxOrigins,
		MaxPerRound:      codec.MaxTreeEntries(frameSize, true),
		Reannounce:       treeReannounce,
	})
	t.flow = flowtree.New(flowtree.Params{
		MaxOrigins:  treeMaxOrigins,
		MaxChildren: fanout, // only tree children report to us (flow.go)
		Stale:       flowStale,
	})
	t.acts = make([]plumtree.Action, 0, 64)
	t.entries = make([]codec.TreeEntry, 0, codec.MaxTreeEntries(frameSize, true)) // room for a tag: fits sealed or not
	t.dests = make([]netip.AddrPort, 0, treeLazyPeers)
	t.buf = make([]byte, 0, frameSize)
	t.msgs = make([]sockopt.Message, 0, treeLazyPeers)
}

// treeView returns the current view when the mesh is a relay tree (nil
// otherwise), resetting grafts and prunes when it changed.
func (r *receiver) treeView() *destView {
	v := r.n.members.view.Load()
	if len(v.live) <= r.n.cfg.DirectLimit {
		return nil
	}
	if v != r.tree.view {
		r.tree.m.Reset()
		r.tree.flow.Reset(v.ids)
		r.tree.m.SetGraftTimeout(treeGraftTimeout * time.Duration(1+r.n.treeDepth()))
		r.tree.view = v
	}
	return v
}

// treeHeld tells the machine how far st is held after a new DATA frame
// from from.
func (r *receiver) treeHeld(h *codec.Header, st *originState, from netip.AddrPort, now time.Time) {
	if r.treeView() == nil {
		return
	}
	t := &r.tree
	if h.Origin != t.fed[0].origin {
		t.fed[1] = t.fed[0]
	}
	t.fed[0] = fedMark{origin: h.Origin, at: now}
	r.tree.m.Held(h.Origin, h.Epoch, st.cum(), from)
	if !r.n.timers.treePending.Load() {
		r.n.timers.treePending.Store(true)
		r.n.timers.kick()
	}
}

// treeHold reports whether a high-water mark held for st since
// st.laterAt (announceLater: from an IHAVE or a control frame, which
// travel ahead of the tree) is held on at now, for at most treeHoldMax:
// while this node has a receive backlog, or has had a first copy of
// another origin's frames within treeBusyWindow, those the mark names may
// be queued behind them. On a loaded mesh with many origins a node near
// them holds frames that are seconds of queueing away from the nodes
// deep in the trees: every node's queue interleaves every origin's
// frames, so one origin's come in bursts seconds apart, and the first of
// them seconds after the first announcements. Marks taken after the
// usual 20 ms per hop then opened gaps on a loss-free net for a tenth to
// a third of all frames (N=300 and N=1000, 10 origins: 97% of the gaps
// detected), with NACKs to parents that had not got them either, then to
// the origins, and grafts that pushed them twice. A frame lost below a
// later one is still seen missing when the later one arrives, and a lost
// tail when the origin's HWM frame comes down the tree behind it; the
// mark is for a node that no tree reaches (views that disagree), and is
// taken after the usual hold on a node that hears one origin only, within
// treeHoldMax on one busy with others.
func (r *receiver) treeHold(st *originState, now time.Time) bool {
	if r.treeView() == nil || now.Sub(st.laterAt) >= treeHoldMax {
		return false
	}
	if r.full.Len() > 0 || r.tree.backlog(r.n) > 0 {
		return true
	}
	t := &r.tree
	other := t.fed[0]
	if other.origin == st.id {
		other = t.fed[1]
	}
	return !other.at.IsZero() && now.Sub(other.at) < treeBusyWindow
}

// treeDuplicate handles a second copy of a DATA frame, from from: one of
// the two senders is PRUNEd — this one, or the sender of the first copy
// when this one is the tree parent or the origin (never pruned: its
// sends do not pass here) — as long as it is neither of those itself.
func (r *receiver) treeDuplicate(h *codec.Header, from netip.AddrPort, now time.Time) {
	v := r.treeView()
	if v == nil || h.Flags&codec.FlagRetransmit != 0 {
		return // a retransmission is asked for, not pushed
	}
	parent, _, hasParent := treeParent(v, r.n.id, h.Origin, r.n.cfg.Fanout)
	isParent := func(a netip.AddrPort) bool { return hasParent && a == parent }
	isOrigin := func(a netip.AddrPort) bool {
		i := slices.Index(v.live, a)
		return i >= 0 && v.ids[i] == h.Origin
	}
	prunable := func(a netip.AddrPort) bool {
		return a.IsValid() && !isParent(a) && !isOrigin(a) && slices.Contains(v.live, a)
	}
	victim, d := from, plumtree.DupKeep
	switch {
	case prunable(from):
		d = plumtree.DupSender
	case isOrigin(from) || isParent(from):
		if victim = r.tree.m.FirstFrom(h.Origin); prunable(victim) {
			d = plumtree.DupFirst
			if isParent(from) {
				d = plumtree.DupFirstLow
			}
		}
	}
	if !r.tree.m.Duplicate(h.Origin, d, now) {
		return
	}
	r.tree.graft[0] = codec.TreeEntry{Origin: h.Origin, Epoch: h.Epoch}
	r.sendTree(codec.TypePrune, r.tree.graft[:], victim)
	r.n.ctr.prunesSent.Add(1)
}

// treeDests adjusts a relay's tree children for origin: children that
// pruned us are skipped, members that grafted onto us are added.
func (r *receiver) treeDests(origin uint64, dests []netip.AddrPort) []netip.AddrPort {
	m := r.tree.m
	k := 0
	for _, d := range dests {
		if !m.Pruned(origin, d) {
			dests[k] = d
			k++
		}
	}
	dests = dests[:k]
	for _, p := range m.Eager(origin) {
		if !slices.Contains(dests, p.Addr) {
			dests = append(dests, p.Addr)
		}
	}
	return dests
}

// treePeer is the sender of a tree frame as the machine knows it; ok is
// false outside a relay tree or for a sender without a validated address
// (the frame is then dropped and counted as DropTreeRefused).
func (r *receiver) treePeer(h *codec.Header) (plumtree.Peer, bool) {
	if r.treeView() == nil {
		r.n.ctr.drop(DropTreeRefused)
		return plumtree.Peer{}, false
	}
	addr, ok := r.n.members.validatedAddr(h.Origin)
	if !ok {
		r.n.ctr.drop(DropTreeRefused)
	}
	return plumtree.Peer{ID: h.Origin, Addr: addr}, ok
}

// treeEntries walks the tree entries of a validated IHAVE, GRAFT or PRUNE.
func treeEntries(h *codec.Header, payload []byte, f func(e codec.TreeEntry)) {
	for i := 0; i < int(h.Count); i++ {
		e, _, err := codec.ParseTreeEntry(payload[i*codec.TreeEntryLen:])
		if err != nil {
			return // cannot happen after ValidatePayload
		}
		f(e)
	}
}

// handleIHave takes a lazy peer's announcement: the marks go to the
// streams (held back like any control frame's in a tree), and frames
// missing here are wanted from the announcer.
func (r *receiver) handleIHave(h *codec.Header, payload []byte, now time.Time) {
	from, ok := r.treePeer(h)
	if !ok {
		return
	}
	treeEntries(h, payload, func(e codec.TreeEntry) {
		if e.Origin == r.n.id {
			return // our own stream, as others hold it: nothing to do
		}
		st := r.ihaveStream(e, now)
		if st == nil {
			r.n.ctr.drop(DropTreeRefused)
			return
		}
		if r.fromParent(h.Origin, e.Origin) {
			// What our parent holds: frames above it that we miss it
			// misses too, and relays down once it has them
			// (repairTarget).
			r.tree.m.ParentHeld(e.Origin, e.Epoch, e.Seq, now)
		}
		r.announceLater(st, e.Seq, now)
		r.tree.m.IHave(from, plumtree.Entry{Origin: e.Origin, Epoch: e.Epoch, Seq: e.Seq}, st.cum(), now)
	})
	if !r.n.timers.treePending.Load() {
		r.n.timers.treePending.Store(true)
		r.n.timers.kick()
	}
}

// ihaveStream is the stream an IHAVE entry speaks of. A member's stream
// is created here if need be, as by its DATA (and a later epoch taken):
// in a relay tree that skips this node, and with SWIM's few control
// frames from each member, an announcement may be the first news of an
// origin's frames, and they are then owed here like any (no silent miss).
// A stranger's, or an earlier epoch's, is refused.
func (r *receiver) ihaveStream(e codec.TreeEntry, now time.Time) *originState {
	if e.Seq > stream.MaxSeq {
		return nil
	}
	st := r.origins[e.Origin]
	if st == nil {
		if !r.isMember(e.Origin) {
			return nil
		}
		if st = r.stateFor(e.Origin, e.Epoch, e.Seq, now); st == nil {
			return nil
		}
	}
	switch {
	case e.Epoch < st.epoch():
		return nil
	case e.Epoch > st.epoch():
		r.newEpoch(st, e.Epoch, now)
	}
	return st
}

// handleGraft makes the sender an eager child for each origin it names
// and resends it what the relay ring holds from the seq it wants.
func (r *receiver) handleGraft(h *codec.Header, payload []byte, now time.Time) {
	from, ok := r.treePeer(h)
	if !ok {
		return
	}
	treeEntries(h, payload, func(e codec.TreeEntry) {
		st := r.origins[e.Origin]
		if st == nil || st.epoch() != e.Epoch ||
			!r.tree.m.Graft(from, plumtree.Entry{Origin: e.Origin, Epoch: e.Epoch, Seq: e.Seq}) {
			r.n.ctr.drop(DropTreeRefused)
			return
		}
		r.serveSeqs(h.Origin, e.Origin, e.Epoch, e.Seq, st.s.Known(), now)
	})
}

// handlePrune stops pushing each origin it names to the sender.
func (r *receiver) handlePrune(h *codec.Header, payload []byte, _ time.Time) {
	from, ok := r.treePeer(h)
	if !ok {
		return
	}
	treeEntries(h, payload, func(e codec.TreeEntry) {
		if !r.tree.m.Prune(from, e.Origin) {
			r.n.ctr.drop(DropTreeRefused)
		}
	})
}

// treeFallback grafts, when its repair of st gives up on the tree parent,
// a member that announced holding the frames (see repairTarget).
func (r *receiver) treeFallback(st *originState, now time.Time) {
	if r.treeView() == nil {
		return
	}
	if r.parentFeeds(st.id) {
		return // slow, not silent: a graft would push its frames twice
	}
	if a, ok := r.tree.m.GraftNow(st.id, now); ok {
		r.tree.graft[0] = codec.TreeEntry{Origin: a.Entry.Origin, Epoch: a.Entry.Epoch, Seq: a.Entry.Seq}
		r.sendTree(codec.TypeGraft, r.tree.graft[:], a.To.Addr)
		r.n.ctr.graftsSent.Add(1)
	}
}

// fromParent reports whether member sender is this node's tree parent
// for origin.
func (r *receiver) fromParent(sender, origin uint64) bool {
	v := r.tree.view
	if v == nil {
		return false
	}
	_, id, ok := treeParent(v, r.n.id, origin, r.n.cfg.Fanout)
	return ok && id == sender
}

// askParent reports whether st's missing frames, the oldest of which
// has been missing for age (longer than the parent window), are still
// asked of this node's tree parent rather than of the origin: while the
// parent said, within window, that it holds less than the oldest (it
// misses them too, and relays them down once it has them: serveRelay),
// or while it has said nothing since the gap opened, for
// treeParentSilence parent windows (a loaded parent answers our NACK only
// once it has worked through what is queued before it, and meanwhile
// relays us the frames queued there; one that does not answer at all,
// e.g. because it has not validated us yet, is not waited for longer);
// for half RepairTimeout at most, which leaves the origin the other half.
// At N=1000 with 10 origins the children of such parents turned to the
// origins after 20 ms per hop: 27k of 42k NACKs.
func (r *receiver) askParent(st *originState, age, window time.Duration, now time.Time) bool {
	if r.treeView() == nil {
		return false
	}
	if age >= r.n.cfg.RepairTimeout/2 {
		return false // the origin has the other half
	}
	held, at := r.tree.m.ParentHeldAt(st.id)
	switch {
	case !at.IsZero() && now.Sub(at) < window && held < st.cum()+1:
		return true // behind us
	case (at.IsZero() || now.Sub(at) >= age) && age < treeParentSilence*window:
		return true // no word since the gap opened, not for long
	}
	return false
}

// parentFeeds reports whether the latest first copy of origin's frames
// came from this node's tree parent (or from the origin, where it is the
// parent): the tree works, if slowly, and needs no graft.
func (r *receiver) parentFeeds(origin uint64) bool {
	v := r.tree.view
	if v == nil {
		return false
	}
	from := r.tree.m.FirstFrom(origin)
	if parent, _, ok := treeParent(v, r.n.id, origin, r.n.cfg.Fanout); ok {
		return from == parent
	}
	i := slices.Index(v.live, from)
	return i >= 0 && v.ids[i] == origin
}

// runTreeTick runs the Plumtree schedule (from the timers goroutine) and
// returns how long until it is due again (0: nothing pending).
func (r *receiver) runTreeTick(now time.Time) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	v := r.treeView()
	if v == nil {
		r.n.timers.treePending.Store(false)
		return 0
	}
	acts, next := r.tree.m.Tick(now, r.tree.acts[:0])
	r.tree.acts = acts
	t := &r.tree
	t.entries = t.entries[:0]
	for _, a := range acts {
		e := codec.TreeEntry{Origin: a.Entry.Origin, Epoch: a.Entry.Epoch, Seq: a.Entry.Seq}
		switch a.Kind {
		case plumtree.SendIHave:
			t.entries = append(t.entries, e)
			if len(t.entries) == cap(t.entries) {
				r.sendIHave(v)
			}
		case plumtree.SendGraft:
			if r.parentFeeds(e.Origin) {
				continue // slow, not silent (see treeFallback)
			}
			t.graft[0] = e
			r.sendTree(codec.TypeGraft, t.graft[:], a.To.Addr)
			r.n.ctr.graftsSent.Add(1)
		}
	}
	if len(t.entries) > 0 {
		r.sendIHave(v)
	}
	if next.IsZero() {
		r.n.timers.treePending.Store(false)
		return 0
	}
	return max(next.Sub(now), time.Millisecond)
}

// sendIHave sends the pending IHAVE entries to the next treeLazyPeers
// members of the view, in turn.
func (r *receiver) sendIHave(v *destView) {
	t := &r.tree
	t.dests = t.dests[:0]
	for range min(treeLazyPeers, len(v.live)) {
		t.turn = (t.turn + 1) % len(v.live)
		t.dests = append(t.dests, v.live[t.turn])
	}
	r.sendTree(codec.TypeIHave, t.entries, t.dests...)
	t.entries = t.entries[:0]
	r.n.ctr.ihavesSent.Add(1)
}

// sendTree builds, seals and sends one IHAVE, GRAFT or PRUNE frame.
func (r *receiver) sendTree(typ codec.FrameType, entries []codec.TreeEntry, to ...netip.AddrPort) {
	n := r.n
	t := &r.tree
	h := n.controlHeader(typ)
	h.Count = uint16(len(entries))
	h.PayloadLen = uint16(len(entries) * codec.TreeEntryLen)
	b := codec.AppendHeader(t.buf[:0], &h)
	for i := range entries {
		b = codec.AppendTreeEntry(b, &entries[i])
	}
	b = n.sealFrame(b, &h, &r.sc)
	t.buf = b
	t.msgs = t.msgs[:0]
	for _, d := range to {
		t.msgs = append(t.msgs, sockopt.Message{Buf: b, Addr: d})
	}
	n.write(t.msgs)
}
