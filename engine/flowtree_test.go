package engine

import (
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/warpmesh/warpmesh/codec"
	"github.com/warpmesh/warpmesh/sockopt"
)

// ackTap is an idle transport that remembers the last ACK written (no
// allocation: the gates below run through it).
type ackTap struct {
	*idleTransport
	mu   sync.Mutex
	acks int
	to   netip.AddrPort
	last codec.Ack
}

func (t *ackTap) WriteBatch(msgs []sockopt.Message) (int, error) {
	for _, m := range msgs {
		h, _, err := codec.ParseHeader(m.Buf)
		if err != nil || h.Type != codec.TypeAck {
			continue
		}
		a, _, err := codec.ParseAck(m.Buf[codec.HeaderLen:])
		if err != nil {
			continue
		}
		t.mu.Lock()
		t.acks++
		t.to, t.last = m.Addr, a
		t.mu.Unlock()
	}
	return t.idleTransport.WriteBatch(msgs)
}

func (t *ackTap) lastAck() (int, netip.AddrPort, codec.Ack) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.acks, t.to, t.last
}

// treeRig is a node in a relay tree it is told of (a view set by hand),
// fed an origin's DATA frames and its tree children's ACKs by the test,
// which plays the receive goroutine (it holds rx.mu).
type treeRig struct {
	n      *Node
	tap    *ackTap
	v      *destView
	origin uint64
	seq    uint64
	fb     codec.FrameBuilder
	buf    []byte
	ackB   []byte
}

// newTreeRig starts a node in a view of 10 other members (DirectLimit 2,
// Fanout 3) in which it sits at ring position pos of origin's tree.
func newTreeRig(t *testing.T, pos int) *treeRig {
	t.Helper()
	tap := &ackTap{idleTransport: newIdleTransport()}
	o := quietOptions(unicastOptions(7946))
	o.Transport = tap
	o.BindAddr = ""
	o.AdvertiseAddr = "127.0.0.1:7946"
	o.DirectLimit, o.Fanout = 2, 3
	n := startNode(t, o)
	self := n.id
	v := &destView{}
	ids := []uint64{}
	for i := uint64(1); i <= uint64(pos); i++ {
		ids = append(ids, self-i)
	}
	for i := uint64(1); i <= uint64(10-pos); i++ {
		ids = append(ids, self+i)
	}
	slices.Sort(ids)
	for _, id := range ids {
		v.ids = append(v.ids, id)
		v.live = append(v.live, netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(id - self + 20)}), 1))
	}
	n.members.view.cur.Store(v)
	g := &treeRig{n: n, tap: tap, v: v, origin: self - uint64(pos),
		buf: make([]byte, 0, codec.DefaultMaxFrameSize), ackB: make([]byte, 0, 64)}
	n.rx.mu.Lock()
	t.Cleanup(n.rx.mu.Unlock)
	return g
}

// addr is member id's address in the rig's view.
func (g *treeRig) addr(id uint64) netip.AddrPort { return g.v.live[slices.Index(g.v.ids, id)] }

// data has the node receive the origin's next k DATA frames and report
// as a batch's end would.
func (g *treeRig) data(k int, now time.Time) {
	for range k {
		g.seq++
		h := codec.Header{Type: codec.TypeData, HopLimit: 8, Cluster: g.n.cfg.cluster, Origin: g.origin, Epoch: 1, Seq: g.seq, Packet: g.seq}
		g.fb.Reset(g.buf[:0], h, codec.DefaultMaxFrameSize)
		g.fb.Add([]byte("user:1"), codec.RecordExact)
		g.n.rx.frame(g.fb.Finish(), g.addr(g.origin), false, now)
	}
	g.n.rx.sendAcks(now)
}

// childAck has the node take from's ACK on origin's epoch (past the
// control path's admission, which the rig's hand-made view has not
// given from) and report as a batch's end would.
func (g *treeRig) childAck(from, origin, epoch, cum uint64, now time.Time) {
	h := codec.Header{Type: codec.TypeAck, Origin: from, Epoch: 1}
	g.ackB = codec.AppendAck(g.ackB[:0], &codec.Ack{Origin: origin, Epoch: epoch, Cum: cum})
	g.n.rx.ack(&h, g.ackB, now)
	g.n.rx.sendAcks(now)
}

func (g *treeRig) refused() uint64 { return g.n.Stats().Drops[DropTreeRefused] }

// TestTreeAckIsSubtreeProgress: a relay (the origin's first child, its
// children at ring positions 4-6) ACKs the origin with its own progress
// lowered to its slowest tree child's report; a report that stops
// advancing while behind stops holding it after flowStale.
func TestTreeAckIsSubtreeProgress(t *testing.T) {
	g := newTreeRig(t, 1)
	self := g.n.id
	kids := []uint64{self + 3, self + 4, self + 5}
	for _, k := range kids {
		if !treeChildOf(g.v, self, g.origin, k, 3) {
			t.Fatalf("member %d not taken for a tree child", k-self)
		}
	}
	now := time.Now()
	g.data(100, now)
	n, to, a := g.tap.lastAck()
	if n != 1 || to != g.addr(g.origin) || a.Origin != g.origin || a.Cum != 100 {
		t.Fatalf("after 100 frames, no child reporting: %d ACKs, last to %v %+v; want 1 to the origin %v with cum 100", n, to, a, g.addr(g.origin))
	}
	check := func(what string, wantN int, wantCum uint64) {
		t.Helper()
		if n, _, a := g.tap.lastAck(); n != wantN || a.Cum != wantCum {
			t.Fatalf("%s: %d ACKs, last cum %d; want %d, cum %d", what, n, a.Cum, wantN, wantCum)
		}
	}
	g.childAck(kids[0], g.origin, 1, 100, now)
	g.childAck(kids[1], g.origin, 1, 100, now)
	now = now.Add(ackInterval)
	g.data(40, now) // own progress 140, children at 100
	check("children at 100, own 140", 1, 100)
	g.childAck(kids[0], g.origin, 1, 130, now)
	check("children at 130 and 100", 1, 100)
	g.childAck(kids[1], g.origin, 1, 140, now)
	check("children at 130 and 140", 2, 130)
	g.childAck(kids[0], g.origin, 1, 135, now)
	check("5 more within ackInterval", 2, 130)
	now = now.Add(ackInterval)
	g.childAck(kids[0], g.origin, 1, 138, now)
	check("8 more after ackInterval", 3, 138)
	// Child 0 goes silent at 138 while frames flow: it holds the relay's
	// report for flowStale, then no longer.
	now = now.Add(ackInterval)
	g.data(20, now)
	check("child 0 fresh at 138, own 160", 3, 138)
	now = now.Add(flowStale)
	g.data(1, now)
	check("children stale at 138 and 140, own 161", 4, 161)
	if r := g.refused(); r != 0 {
		t.Fatalf("%d reports refused, want 0", r)
	}
}

// TestTreeAckToParent: a node deeper in the tree ACKs its tree parent,
// not the origin.
func TestTreeAckToParent(t *testing.T) {
	g := newTreeRig(t, 4) // parent: position 1
	g.data(20, time.Now())
	parent, pid, ok := treeParent(g.v, g.n.id, g.origin, 3)
	if !ok || pid != g.origin+1 {
		t.Fatalf("rig: parent %d ok %v, want the origin's first child", pid, ok)
	}
	if n, to, a := g.tap.lastAck(); n != 1 || to != parent || a.Cum != 20 || a.Origin != g.origin {
		t.Fatalf("%d ACKs, last to %v %+v; want 1 to the parent %v, origin %d cum 20", n, to, a, parent, g.origin)
	}
}

// TestTreeAckRefused: progress reports on another origin's stream are
// taken only from our tree children for it, about an origin and epoch we
// have a stream for; the rest are dropped and counted, and change nothing.
func TestTreeAckRefused(t *testing.T) {
	g := newTreeRig(t, 1)
	self := g.n.id
	now := time.Now()
	g.data(100, now)
	now = now.Add(ackInterval)
	before := g.refused()
	for _, tc := range []struct {
		name                string
		from, origin, epoch uint64
	}{
		{"not our child (a sibling's)", self + 1, g.origin, 1},
		{"not our child (a grandchild)", self + 9, g.origin, 1},
		{"the origin itself", g.origin, g.origin, 1},
		{"an origin we have no stream for", self + 3, self + 2, 1},
		{"a stranger's stream", self + 3, 0xdead, 1},
		{"an earlier epoch", self + 3, g.origin, 0},
		{"a later epoch", self + 3, g.origin, 2},
	} {
		g.childAck(tc.from, tc.origin, tc.epoch, 1, now)
		if r := g.refused() - before; r != 1 {
			t.Fatalf("%s: %d drops counted, want 1", tc.name, r)
		}
		before++
	}
	g.data(20, now)
	if _, _, a := g.tap.lastAck(); a.Cum != 120 {
		t.Fatalf("cum %d after refused reports of 1, want 120: a refused report held the subtree", a.Cum)
	}
	// In a direct mesh nobody reports on another origin's stream to us.
	g.n.members.view.cur.Store(&destView{ids: g.v.ids[:1], live: g.v.live[:1]})
	g.childAck(self+3, g.origin, 1, 1, now)
	if r := g.refused() - before; r != 1 {
		t.Fatalf("outside a relay tree: %d drops counted, want 1", r)
	}
}

// TestTreeAckZeroAlloc: a relay's DATA path with its ACK up, and a tree
// child's ACK taken and aggregated, allocate nothing once the origin's
// states exist.
func TestTreeAckZeroAlloc(t *testing.T) {
	g := newTreeRig(t, 1)
	self := g.n.id
	now := time.Now()
	g.data(1, now)
	g.childAck(self+3, g.origin, 1, 1, now) // the origin's flow table entry
	allocs := testing.AllocsPerRun(1000, func() {
		now = now.Add(ackInterval)
		g.data(1, now)
		g.childAck(self+3, g.origin, 1, g.seq, now)
		g.childAck(self+4, g.origin, 1, g.seq, now)
	})
	if allocs != 0 {
		t.Fatalf("tree ACK path allocates %.1f per round", allocs)
	}
	s := g.n.Stats()
	if n, _, _ := g.tap.lastAck(); n < 1000 || s.AcksReceived < 2002 || s.Drops[DropTreeRefused] != 0 {
		t.Fatalf("%d ACKs sent, %d received, %d refused: the measured path did not run", n, s.AcksReceived, s.Drops[DropTreeRefused])
	}
}

// TestOwnTreeChildren: the origin's window is kept to the members it
// sends to itself (treeChildren with origin self).
func TestOwnTreeChildren(t *testing.T) {
	for _, size := range []int{4, 10, 40} {
		for _, selfAt := range []int{0, 1, size / 2, size} {
			v := &destView{}
			self := uint64(1000 + 10*selfAt + 5)
			for i := range size {
				id := uint64(1000 + 10*i)
				if i >= selfAt {
					id += 10
				}
				v.ids = append(v.ids, id)
				v.live = append(v.live, netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 1))
			}
			addrs := treeChildren(v, self, self, 3, nil)
			ids := ownTreeChildren(v, self, 3, nil)
			if len(ids) != len(addrs) {
				t.Fatalf("size %d self at %d: %d ids for %d children", size, selfAt, len(ids), len(addrs))
			}
			for i, id := range ids {
				if v.live[slices.Index(v.ids, id)] != addrs[i] {
					t.Fatalf("size %d self at %d: child %d is %v, id %d", size, selfAt, i, addrs[i], id)
				}
				if !treeChildOf(v, self, self, id, 3) {
					t.Fatalf("size %d self at %d: own child %d not a tree child", size, selfAt, id)
				}
			}
			// treeChildOf agrees with treeChildren for every origin.
			for _, origin := range v.ids {
				kids := treeChildren(v, self, origin, 3, nil)
				for j, id := range v.ids {
					if got, want := treeChildOf(v, self, origin, id, 3), slices.Contains(kids, v.live[j]); got != want {
						t.Fatalf("size %d self at %d origin %d member %d: treeChildOf %v, treeChildren says %v", size, selfAt, origin, id, got, want)
					}
				}
			}
		}
	}
}

// TestFlowTreeWaiver: the exemptions of flowState, direct and tree.
func TestFlowTreeWaiver(t *testing.T) {
	var f flowState
	f.init()
	ids := []uint64{7}
	const window = 10
	held := func(seq uint64) bool {
		_, ok := f.slowest(ids, seq)
		return ok
	}
	f.report(7, 100)
	if low, ok := f.slowest(ids, 120); !ok || low != 100 {
		t.Fatalf("slowest = %d, %v; want 100", low, ok)
	}
	for _, step := range []struct {
		seq       uint64 // a wait for sending through seq ran out
		freeUntil uint64 // then exempt through here, held after
	}{{120, 120}, {121, 131}, {132, 162}, {163, 233}} {
		f.waive(ids, step.seq, window, true)
		if held(step.seq) || held(step.freeUntil) || !held(step.freeUntil+1) {
			t.Fatalf("after a wait through %d ran out: held at it %v, at %d %v, at %d %v; want exempt through %d only",
				step.seq, held(step.seq), step.freeUntil, held(step.freeUntil), step.freeUntil+1, held(step.freeUntil+1), step.freeUntil)
		}
	}
	f.report(7, 101) // progress ends the exemption and its backoff
	if low, ok := f.slowest(ids, 200); !ok || low != 101 {
		t.Fatalf("after progress: slowest = %d, %v; want 101", low, ok)
	}
	f.waive(ids, 200, window, true)
	if held(200) || !held(201) {
		t.Fatal("after progress the backoff did not start over")
	}
	// Direct mesh: exempt until progress, however far.
	f.report(7, 300)
	f.waive(ids, 320, window, false)
	if held(1 << 40) {
		t.Fatal("a direct receiver waived holds the origin back before it reports progress")
	}
	f.report(7, 301)
	if !held(320) {
		t.Fatal("a direct receiver's progress did not end its waiver")
	}
}

// TestAwaitWindowTree: in a relay tree the origin's window bounds its own
// tree children only, FlowWindow plus ackEvery per tree level beyond
// their reports, and a child whose waits run out holds it again past
// the flush that waited.
func TestAwaitWindowTree(t *testing.T) {
	o := quietOptions(unicastOptions(7946))
	o.Transport = newIdleTransport()
	o.BindAddr = ""
	o.AdvertiseAddr = "127.0.0.1:7946"
	o.DirectLimit, o.Fanout, o.FlowWindow = 2, 3, 8
	n := startNode(t, o)
	self := n.id
	v := &destView{}
	for i := uint64(1); i <= 10; i++ {
		v.ids = append(v.ids, self+i)
		v.live = append(v.live, netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), 1))
	}
	var s sender
	if err := s.init(n); err != nil {
		t.Fatal(err)
	}
	window := uint64(8 + ackEvery*treeLevels(len(v.live), 3)) // 11 nodes: 2 levels
	waits := func(seq uint64) (waited, timedOut bool) {
		before := n.Stats()
		s.awaitWindow(v, seq)
		after := n.Stats()
		return after.FlowWaits > before.FlowWaits, after.FlowTimeouts > before.FlowTimeouts
	}
	n.flow.report(self+5, 1) // not our child: holds nothing
	if w, _ := waits(100); w {
		t.Fatal("the origin waited for a member that is not its tree child")
	}
	n.flow.report(self+2, 50) // our second child
	if w, _ := waits(50 + window); w {
		t.Fatalf("the origin waited within the window (%d frames beyond its child)", window)
	}
	if a := testing.AllocsPerRun(100, func() { s.awaitWindow(v, 50+window) }); a != 0 {
		t.Fatalf("awaitWindow in a relay tree allocates %.1f per flush", a)
	}
	for _, step := range []struct{ seq, freeUntil uint64 }{
		{51 + window, 51 + window},
		{52 + window, 52 + 2*window},
	} {
		if w, to := waits(step.seq); !w || !to {
			t.Fatalf("through %d, child at 50: waited %v, timed out %v; want both", step.seq, w, to)
		}
		if w, _ := waits(step.freeUntil); w {
			t.Fatalf("waited again through %d, within the waiver", step.freeUntil)
		}
	}
}
