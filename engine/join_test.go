package engine

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warpmesh/warpmesh/codec"
	"github.com/warpmesh/warpmesh/sockopt"
)

// checkRepairCounters asserts the documented invariant between the repair
// counters once no gap is open.
func checkRepairCounters(t *testing.T, name string, s Stats) {
	t.Helper()
	if s.GapsDetected != s.GapsRepaired+s.FramesLost+s.GapsNotOwed {
		t.Errorf("%s: GapsDetected %d != GapsRepaired %d + FramesLost %d + GapsNotOwed %d",
			name, s.GapsDetected, s.GapsRepaired, s.FramesLost, s.GapsNotOwed)
	}
}

// gapCounter counts Gap events and the frames they cover.
type gapCounter struct {
	mu      sync.Mutex
	events  int
	missing uint64
	ready   int
}

func (g *gapCounter) on(e Event) {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch e.Type {
	case EventGap:
		g.events++
		g.missing += e.Gap.Missing
	case EventReady:
		g.ready++
	}
}

func (g *gapCounter) snapshot() (events int, missing uint64, ready int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.events, g.missing, g.ready
}

// TestJoinMidStream starts a node while another publishes without pause:
// once the new node is ready, every key published is delivered to it — no
// key is taken as "not meant for me" — and it raises no Gap on a
// loss-free network. Repeated, because the race it closes is a timing one.
func TestJoinMidStream(t *testing.T) {
	ports := freePorts(t, 2)
	a := startNode(t, unicastOptions(ports[0]))
	waitFor(t, 5*time.Second, "a ready (empty mesh)", a.Ready)

	for round := 0; round < 5; round++ {
		var b atomic.Pointer[Node]
		var got sync.Map // key → true
		var gaps gapCounter
		stop := make(chan struct{})
		var afterReady []string
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				bn := b.Load()
				key := fmt.Sprintf("r%d:k%d", round, i)
				ready := bn != nil && bn.Ready()
				if err := a.Publish(context.Background(), []byte(key), false); err != nil {
					t.Error(err)
					return
				}
				if ready {
					afterReady = append(afterReady, key)
				}
				if i%64 == 0 {
					time.Sleep(200 * time.Microsecond) // pacing, not synchronisation
				}
			}
		}()
		o := unicastOptions(ports[1], ports[0])
		o.OnInvalidate = func(inv Invalidation) { got.Store(string(inv.Key), true) }
		o.OnEvent = gaps.on
		bn, err := New(o)
		if err != nil {
			t.Fatal(err)
		}
		b.Store(bn)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := bn.WaitReady(ctx); err != nil {
			t.Fatalf("round %d: WaitReady: %v", round, err)
		}
		cancel()
		// Let the publisher run on well past readiness, then stop it.
		target := a.Stats().Published + 2000
		waitFor(t, 10*time.Second, "publisher progress", func() bool { return a.Stats().Published >= target })
		close(stop)
		wg.Wait()
		if len(afterReady) == 0 {
			t.Fatalf("round %d: nothing published after ready", round)
		}
		waitFor(t, 10*time.Second, "every key published after ready delivered", func() bool {
			for _, k := range afterReady {
				if _, ok := got.Load(k); !ok {
					return false
				}
			}
			return true
		})
		if ev, _, ready := gaps.snapshot(); ev != 0 || ready != 1 {
			t.Errorf("round %d: %d Gap events, %d ready events on a loss-free net (want 0, 1)", round, ev, ready)
		}
		s := bn.Stats()
		// Ready either from the answer to its JOIN ask or, when the
		// publisher listed it first, from the join mark on the
		// publisher's frames (a loaded machine does that): no ask is then
		// needed, so JoinAsksSent may be 0.
		if !s.Ready {
			t.Errorf("round %d: not ready (JoinAsksSent %d)", round, s.JoinAsksSent)
		}
		checkRepairCounters(t, fmt.Sprintf("round %d", round), s)
		bn.Close()
		waitFor(t, 5*time.Second, "b gone from a", func() bool { return aliveCount(a) == 0 })
	}
}

// TestNewOriginHistoryRepaired: a node that starts and publishes at once,
// before the others list it, loses nothing at ready receivers: they expect
// its epoch from its first sequence and repair the frames sent before they
// were in its fan-out from its retransmit ring, without a Gap.
func TestNewOriginHistoryRepaired(t *testing.T) {
	ports := freePorts(t, 3)
	a := startNode(t, unicastOptions(ports[0]))
	var aGaps gapCounter
	a.OnEvent(aGaps.on)
	b := startNode(t, unicastOptions(ports[1], ports[0]))
	waitFor(t, 5*time.Second, "a and b ready", func() bool { return a.Ready() && b.Ready() })
	la, lb := newKeyLog(a), newKeyLog(b)

	c := startNode(t, unicastOptions(ports[2], ports[0]))
	const keys = 3000
	for i := 0; i < keys; i++ {
		if err := c.Publish(context.Background(), []byte(fmt.Sprintf("c:%d", i)), false); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "every key of the new origin at a and b", func() bool {
		return la.distinct() == keys && lb.distinct() == keys
	})
	if ev, _, _ := aGaps.snapshot(); ev != 0 {
		t.Fatalf("a raised %d Gap events", ev)
	}
	waitFor(t, 5*time.Second, "c ready", c.Ready)
	for name, n := range map[string]*Node{"a": a, "b": b} {
		checkRepairCounters(t, name, n.Stats())
	}
}

// feedTransport hands the node whole batches of datagrams queued by the
// test, and swallows writes.
type feedTransport struct {
	in     chan [][]byte
	closed chan struct{}
	once   sync.Once
	from   netip.AddrPort
	sent   atomic.Uint64
	member atomic.Uint64 // non-zero: answer challenges as this member (answerAs)
	epoch  atomic.Uint64
	packet atomic.Uint64
}

func newFeedTransport() *feedTransport {
	return &feedTransport{in: make(chan [][]byte, 4), closed: make(chan struct{}),
		from: netip.MustParseAddrPort("127.0.0.1:2")}
}

func (t *feedTransport) ReadBatch(msgs []sockopt.Message) (int, error) {
	select {
	case bs := <-t.in:
		for i, b := range bs {
			msgs[i].N = copy(msgs[i].Buf, b)
			msgs[i].Addr = t.from
		}
		return len(bs), nil
	case <-t.closed:
		return 0, ErrClosed
	}
}

func (t *feedTransport) WriteBatch(msgs []sockopt.Message) (int, error) {
	t.sent.Add(uint64(len(msgs)))
	if id := t.member.Load(); id != 0 {
		// Stand in for the member at t.from: answer its address validation.
		for _, m := range msgs {
			h, _, err := codec.ParseHeader(m.Buf)
			if err != nil || h.Type != codec.TypeChallenge || m.Addr != t.from {
				continue
			}
			rh := codec.Header{Type: codec.TypeResponse, HopLimit: 1, Cluster: h.Cluster, Origin: id,
				Epoch: t.epoch.Load(), Packet: t.packet.Add(1), PayloadLen: h.PayloadLen}
			resp := append(codec.AppendHeader(nil, &rh), m.Buf[codec.HeaderLen:codec.HeaderLen+int(h.PayloadLen)]...)
			select {
			case t.in <- [][]byte{resp}:
			default:
			}
		}
	}
	return len(msgs), nil
}

// answerAs makes the transport answer CHALLENGEs to t.from as member id
// of epoch, starting its packet numbers at packet.
func (t *feedTransport) answerAs(id, epoch, packet uint64) {
	t.epoch.Store(epoch)
	t.packet.Store(packet)
	t.member.Store(id)
}

func (t *feedTransport) LocalAddr() netip.AddrPort { return netip.MustParseAddrPort("127.0.0.1:1") }

func (t *feedTransport) Close() error {
	t.once.Do(func() { close(t.closed) })
	return nil
}

func feedNode(t *testing.T) (*Node, *feedTransport, *gapCounter, func() []Gap) {
	t.Helper()
	tr := newFeedTransport()
	o := quietOptions(unicastOptions(7946))
	o.Transport, o.BindAddr, o.AdvertiseAddr = tr, "", "127.0.0.1:1"
	var gaps gapCounter
	var mu sync.Mutex
	var list []Gap
	o.OnEvent = func(e Event) {
		if e.Type == EventGap { // listed before counted: a test that saw the count finds the gap
			mu.Lock()
			list = append(list, e.Gap)
			mu.Unlock()
		}
		gaps.on(e)
	}
	n := startNode(t, o)
	waitFor(t, 5*time.Second, "ready (empty mesh)", n.Ready)
	return n, tr, &gaps, func() []Gap { mu.Lock(); defer mu.Unlock(); return append([]Gap(nil), list...) }
}

// TestGapsCoalesced: losses given up together raise one Gap event per
// origin covering the whole range (one flush), and the counters add up
// even for sequences given up before they could be noticed.
func TestGapsCoalesced(t *testing.T) {
	n, tr, gaps, list := feedNode(t)
	c := n.cfg.cluster
	// One batch whose jumps each push missing frames out of the window:
	// several give-ups of one origin, one event.
	tr.in <- [][]byte{
		testDataFrame(c, 0x55, 1, 1, "k1"),
		testDataFrame(c, 0x55, 1, 3*windowSize, "k2"),
		testDataFrame(c, 0x55, 1, 5*windowSize, "k3"),
		testDataFrame(c, 0x55, 1, 7*windowSize, "k4"),
	}
	waitFor(t, 5*time.Second, "a Gap event", func() bool { ev, _, _ := gaps.snapshot(); return ev > 0 })
	waitFor(t, 5*time.Second, "frames applied", func() bool { return n.Stats().DataFrames == 4 })
	s := n.Stats()
	if s.GapEvents() != 1 {
		t.Fatalf("GapEvents %d, want 1 for one batch", s.GapEvents())
	}
	ev, missing, _ := gaps.snapshot()
	if ev != 1 {
		t.Fatalf("%d Gap events, want 1", ev)
	}
	g := list()[0]
	if g.Origin != 0x55 || g.First != 2 || g.Last < 5*windowSize || g.Reason != GapTooOld {
		t.Fatalf("gap %+v: want origin 0x55 from 2 past %d, too_old", g, 5*windowSize)
	}
	if missing != s.FramesLost {
		t.Fatalf("events cover %d frames, FramesLost %d", missing, s.FramesLost)
	}
	if s.GapsDetected < s.FramesLost {
		t.Fatalf("GapsDetected %d < FramesLost %d: given-up frames were never counted as detected", s.GapsDetected, s.FramesLost)
	}
}

// TestJoinAnswerRebases drives the receiver side of the handshake by hand:
// a fresh node that first sees an origin's sequence 100 and is then told
// it was in the fan-out from sequence 40 owes 40..99 (it NACKs them),
// and an answer above what it saw excuses the noticed hole below it.
func TestJoinAnswerRebases(t *testing.T) {
	tr := newFeedTransport()
	o := quietOptions(unicastOptions(7946))
	o.Transport, o.BindAddr, o.AdvertiseAddr = tr, "", "127.0.0.1:1"
	o.Heartbeat = time.Second // the empty-mesh grace is then 1s: the test answers first
	n := startNode(t, o)
	c := n.cfg.cluster
	const origin = 0x66
	alive := func(packet uint64) []byte {
		h := codec.Header{Type: codec.TypeAlive, HopLimit: 1, Cluster: c, Origin: origin, Epoch: 1, Packet: packet, Seq: 99,
			PayloadLen: uint16(codec.AlivePayloadLen(0))}
		b := codec.AppendHeader(nil, &h)
		return codec.AppendAlive(b, &codec.Alive{Incarnation: 1, Addr: tr.from})
	}
	answer := func(packet, from uint64) []byte {
		h := codec.Header{Type: codec.TypeJoin, HopLimit: 1, Cluster: c, Origin: origin, Epoch: 1, Packet: packet,
			PayloadLen: codec.JoinLen}
		b := codec.AppendHeader(nil, &h)
		return codec.AppendJoin(b, &codec.Join{Kind: codec.JoinAnswer, Member: n.ID(), From: from})
	}
	tr.answerAs(origin, 1, 1000)
	tr.in <- [][]byte{alive(1), testDataFrame(c, origin, 1, 100, "k100")}
	waitFor(t, 5*time.Second, "member and a JOIN ask", func() bool {
		s := n.Stats()
		return s.MembersAlive == 1 && s.JoinAsksSent > 0 && s.DataFrames == 1
	})
	if n.Ready() {
		t.Fatal("ready before the member answered")
	}
	tr.in <- [][]byte{answer(2000, 40)}
	waitFor(t, 5*time.Second, "ready after the answer", n.Ready)
	waitFor(t, 5*time.Second, "a NACK for 40..99", func() bool { return n.Stats().NacksSent > 0 })
	if s := n.Stats(); s.GapsDetected != 60 {
		t.Fatalf("GapsDetected %d, want the 60 frames 40..99", s.GapsDetected)
	}
	// The origin retransmits them: all repaired.
	var batch [][]byte
	for s := uint64(40); s < 100; s++ {
		f := testDataFrame(c, origin, 1, s, fmt.Sprintf("k%d", s))
		batch = append(batch, f)
		if len(batch) == 30 {
			tr.in <- batch
			batch = nil
		}
	}
	waitFor(t, 5*time.Second, "repaired", func() bool { return n.Stats().GapsRepaired == 60 })
	s := n.Stats()
	checkRepairCounters(t, "after repair", s)
	if s.GapEvents() != 0 {
		t.Fatalf("%d Gap events", s.GapEvents())
	}
}

// TestOriginFloodBounded: DATA and HWM frames from 10,000 forged origins
// leave at most maxStrangers receive states (HWMs from non-members none at
// all), and a legitimate newcomer is still taken: its heartbeat makes it a
// member and its invalidation is applied.
func TestOriginFloodBounded(t *testing.T) {
	n, tr, _, _ := feedNode(t)
	c := n.cfg.cluster
	got := newKeyLog(n)
	const forged = 10_000
	var batch [][]byte
	for i := uint64(0); i < forged; i++ {
		origin := 0x1000_0000 + i
		hwm := codec.Header{Type: codec.TypeHWM, HopLimit: 1, Cluster: c, Origin: origin + forged, Epoch: 1, Seq: 50, Packet: 1}
		batch = append(batch, testDataFrame(c, origin, 1, 7, "forged"), codec.AppendHeader(nil, &hwm))
		if len(batch) >= 32 {
			tr.in <- batch
			batch = nil
		}
	}
	waitFor(t, 10*time.Second, "flood processed", func() bool { return n.Stats().FramesReceived >= 2*forged })
	s := n.Stats()
	if s.Origins > maxStrangers {
		t.Fatalf("%d origin states after %d forged origins, cap %d", s.Origins, forged, maxStrangers)
	}
	if s.OriginsEvicted != uint64(forged-s.Origins) || s.Drops[DropUnknownMember] != forged {
		t.Fatalf("OriginsEvicted %d, unknown-member drops %d", s.OriginsEvicted, s.Drops[DropUnknownMember])
	}
	// The newcomer.
	tr.answerAs(0x77, 9, 1000)
	h := codec.Header{Type: codec.TypeAlive, HopLimit: 1, Cluster: c, Origin: 0x77, Epoch: 9, Packet: 1,
		PayloadLen: uint16(codec.AlivePayloadLen(0))}
	alive := codec.AppendAlive(codec.AppendHeader(nil, &h), &codec.Alive{Incarnation: 1, Addr: tr.from})
	tr.in <- [][]byte{alive, testDataFrame(c, 0x77, 9, 1, "legit")}
	waitFor(t, 5*time.Second, "the newcomer's invalidation", func() bool { return got.count("legit") == 1 })
	if s := n.Stats(); s.MembersAlive != 1 {
		t.Fatalf("MembersAlive %d, want the newcomer", s.MembersAlive)
	}
}

// joinMute is a transport that drops the JOIN frames and stream-marks
// answers its node writes: a member that is listed, validated and
// publishing, but never answers a JOIN ask or a marks request (as a
// killed one that others still list until DeadAfter).
type joinMute struct {
	Transport
	dropped atomic.Uint64
}

func (j *joinMute) WriteBatch(msgs []sockopt.Message) (int, error) {
	pass := make([]sockopt.Message, 0, len(msgs)) // a test transport may allocate
	for _, m := range msgs {
		h, _, err := codec.ParseHeader(m.Buf)
		marks := err == nil && h.Type == codec.TypeSync && len(m.Buf) > codec.HeaderLen && codec.SyncKind(m.Buf[codec.HeaderLen]) == codec.SyncMarks
		if err == nil && h.Type == codec.TypeJoin || marks {
			j.dropped.Add(1)
			continue
		}
		pass = append(pass, m)
	}
	if err := writeAll(j.Transport, pass); err != nil {
		return 0, err
	}
	return len(msgs), nil
}

// TestReadyDespiteUnansweredAsk: a member that never answers the JOIN ask
// (nor the marks request) holds a new node's readiness back for
// SuspectAfter, not for as long as it is listed; the node then expects
// that member's whole epoch, so what it published before is repaired from
// its ring, not skipped.
func TestReadyDespiteUnansweredAsk(t *testing.T) {
	p := freePorts(t, 2)
	conn, err := sockopt.Listen(sockopt.Config{BindAddr: netip.MustParseAddr("127.0.0.1"), Port: p[0], RecvBuffer: 1 << 20, SendBuffer: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	mute := &joinMute{Transport: conn}
	oa := unicastOptions(p[0])
	oa.Transport, oa.BindAddr = mute, ""
	a := startNode(t, oa)
	waitFor(t, 5*time.Second, "a ready (empty mesh)", a.Ready)
	const early = 50
	for i := range early {
		if err := a.Publish(context.Background(), []byte(fmt.Sprintf("early:%d", i)), false); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "a's early keys sent", func() bool { return a.Stats().RecordsSent == early })

	ob := unicastOptions(p[1], p[0])
	ob.SuspectAfter = 200 * time.Millisecond
	ob.DeadAfter = 10 * time.Second // a stays listed alive far longer than it stays unanswered
	var gaps gapCounter
	ob.OnEvent = gaps.on
	b := startNode(t, ob)
	lb := newKeyLog(b)
	waitFor(t, 5*time.Second, "b lists a", func() bool { return aliveCount(b) == 1 })
	waitFor(t, 5*time.Second, "b ready though a never answered", b.Ready)
	if mute.dropped.Load() == 0 {
		t.Fatal("a sent no JOIN answer to drop: nothing was tested")
	}
	// b never had a's answer: it expects a's epoch from its first frame,
	// so the early keys, published before b existed, are repaired.
	waitFor(t, 5*time.Second, "a's history repaired at b", func() bool {
		lb.mu.Lock()
		defer lb.mu.Unlock()
		for i := range early {
			if lb.counts[fmt.Sprintf("early:%d", i)] == 0 {
				return false
			}
		}
		return true
	})
	s := b.Stats()
	if ev, _, _ := gaps.snapshot(); ev != 0 {
		t.Errorf("%d Gap events, want none: a's ring held its whole history", ev)
	}
	t.Logf("b: join asks %d, NACKs %d, retransmits received %d", s.JoinAsksSent, s.NacksSent, s.RetransmitsReceived)
}
