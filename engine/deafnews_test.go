package engine

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// TestDeadProbeCarriesNews: a member declared dead is probed every round
// while our high-water mark moves (its probe's mark may be its only news
// of what we publish: an inbound-only cut on our side), and only every
// deadProbeEvery rounds once we are idle. Before, it was every
// deadProbeEvery rounds after the first deadProbeRounds whatever we
// published, so a member that hears us learned of a publication up to
// deadProbeEvery heartbeats late — past the staleness bound's two.
func TestDeadProbeCarriesNews(t *testing.T) {
	m := capTable()
	now := time.Now()
	m.validated(2, 1, phantom(1), phantom(1), 10, now)
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.members[2]
	e.State, e.stateSince, e.deadRounds = StateDead, now, 0
	m.syncLocked(e) // as every state change does: the dead index holds it
	var dst []netip.AddrPort
	probed := func(hwm uint64) bool {
		dst = m.deadTargets(dst[:0], hwm)
		return len(dst) == 1 && dst[0] == phantom(1)
	}
	hwm := uint64(100)
	for r := 1; r <= deadProbeRounds; r++ {
		if !probed(hwm) {
			t.Fatalf("round %d after death: not probed", r)
		}
	}
	// Idle: every deadProbeEvery rounds.
	idle := 0
	for range 4 * deadProbeEvery {
		if probed(hwm) {
			idle++
		}
	}
	if idle != 4 {
		t.Fatalf("idle: probed in %d of %d rounds, want every %dth", idle, 4*deadProbeEvery, deadProbeEvery)
	}
	// Publishing: every round the mark moved.
	for r := range 4 * deadProbeEvery {
		hwm++
		if !probed(hwm) {
			t.Fatalf("round %d with a new high-water mark: not probed", r)
		}
	}
	// Idle again: sparse again.
	idle = 0
	for range 4 * deadProbeEvery {
		if probed(hwm) {
			idle++
		}
	}
	if idle != 4 {
		t.Fatalf("idle again: probed in %d of %d rounds, want every %dth", idle, 4*deadProbeEvery, deadProbeEvery)
	}
}

// TestDeafOriginNewsEveryRound: the driver end to end. a hears nothing
// from b (b hears a), declares it dead and, long after the first
// deadProbeRounds, keeps publishing: every invalidation a publishes is
// announced to b (whose stream of a learns the mark) within two of a's
// heartbeat rounds of leaving, counted on a's own heartbeat clock, not
// the wall clock: b may be slow to read, but not a round behind.
func TestDeafOriginNewsEveryRound(t *testing.T) {
	a, atr, _ := faultNode(t, nil)
	b, _, _ := faultNode(t, nil, a.Addr())
	waitFor(t, 5*time.Second, "mesh ready", func() bool {
		return aliveCount(a) == 1 && aliveCount(b) == 1 && a.Ready() && b.Ready()
	})
	atr.block(b.Addr()) // a hears nothing from b
	rounds := func() int { return deadRounds(a, b.ID()) }
	waitFor(t, 10*time.Second, "a probes b sparsely", func() bool { return rounds() > deadProbeRounds+deadProbeEvery })
	known := func() uint64 {
		b.rx.mu.Lock()
		defer b.rx.mu.Unlock()
		if st := b.rx.origins[a.ID()]; st != nil {
			return st.s.Known()
		}
		return 0
	}
	late := 0
	const keys = 3 * deadProbeEvery
	for i := range keys {
		_ = i
		// Publish just after a sparse probe round, so that the next one
		// is deadProbeEvery-1 rounds away.
		waitFor(t, 5*time.Second, "a sparse probe round", func() bool { return rounds()%deadProbeEvery == 0 })
		waitFor(t, 5*time.Second, "the round after it", func() bool { return rounds()%deadProbeEvery == 1 })
		prev := a.hwm.Load()
		if err := a.Publish(context.Background(), []byte("deaf"), false); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, "the frame to leave", func() bool { return a.hwm.Load() > prev })
		seq := a.hwm.Load()
		left := rounds()
		waitFor(t, 5*time.Second, "b to learn a's mark", func() bool { return known() >= seq })
		if took := rounds() - left; took > 2 {
			late++
			t.Logf("key %d (seq %d): b learned of it %d rounds after it left", i, seq, took)
		}
	}
	if late > 0 {
		t.Fatalf("%d of %d publications reached a member that hears us more than two heartbeat rounds after they left", late, keys)
	}
}

// TestIsolatedKeepsDeadPastHeal: a node that heard no live member (cut
// off) keeps its dead members past the forget time; when the cut heals
// and the first of them is back, it keeps the others for the forget time
// after that, still probing them, instead of forgetting them all at once
// (they would then be strangers it neither probes nor takes news from
// until each happens to greet it).
func TestIsolatedKeepsDeadPastHeal(t *testing.T) {
	m := capTable()
	reap := 10 * m.cfg.DeadAfter
	t0 := time.Now()
	m.validated(2, 1, phantom(2), phantom(2), 10, t0)
	m.validated(3, 1, phantom(3), phantom(3), 10, t0)
	t1 := t0.Add(m.cfg.DeadAfter)
	m.tick(t1)
	state := func(id uint64) (MemberState, bool) {
		m.mu.Lock()
		defer m.mu.Unlock()
		e := m.members[id]
		if e == nil {
			return 0, false
		}
		return e.State, true
	}
	if s2, _ := state(2); s2 != StateDead {
		t.Fatalf("member 2 is %v after DeadAfter of silence", s2)
	}
	m.tick(t1.Add(reap + time.Second)) // cut off: nobody live, nobody forgotten
	if _, ok := state(3); !ok {
		t.Fatal("an isolated node forgot its dead member")
	}
	t3 := t1.Add(reap + 2*time.Second)
	m.validated(2, 1, phantom(2), phantom(2), 20, t3) // the cut heals: 2 answers first
	m.tick(t3)
	if s3, ok := state(3); !ok || s3 != StateDead {
		t.Fatalf("member 3 forgotten (%v) the moment the first member came back", s3)
	}
	m.mu.Lock()
	dst := m.deadTargets(nil, 1)
	m.mu.Unlock()
	if len(dst) != 1 || dst[0] != phantom(3) {
		t.Fatalf("dead member 3 not probed after the heal: %v", dst)
	}
	t4 := t3.Add(reap + time.Second)
	m.heard(2, 1, 0, phantom(2), false, t4) // 2 stays live
	m.tick(t4)
	if _, ok := state(3); ok {
		t.Fatal("a dead member silent for the forget time after the heal is still kept")
	}
}

// TestGapPendingWhenOverdue: a gap that has waited RepairTimeout makes
// GapPending true at once, before the repair timer has given it up (here
// it cannot: the test holds the receiver's lock, as a timer goroutine
// waiting for a CPU would not run); once given up, GapPending stays true
// for a cache that has not flushed for the Gap, and is false for one that
// has.
func TestGapPendingWhenOverdue(t *testing.T) {
	o := unicastOptions(freePorts(t, 1)[0])
	o.RepairTimeout = 50 * time.Millisecond
	n := startNode(t, o)
	waitFor(t, 5*time.Second, "ready", n.Ready)
	waitFor(t, 5*time.Second, "the receiver's clock past two repair timeouts", func() bool {
		return time.Since(n.rx.born) > 2*o.RepairTimeout
	})
	if n.GapPending(n.GapsRaised()) {
		t.Fatal("GapPending with no gap open")
	}
	r := &n.rx
	r.mu.Lock()
	now := time.Now()
	st := r.stateFor(42, 1, 0, now)
	if st == nil {
		r.mu.Unlock()
		t.Fatal("no origin state")
	}
	r.announced(st, 5, now.Add(-2*o.RepairTimeout)) // five frames known missing since two timeouts ago
	pendingLocked := n.GapPending(0)
	raisedLocked := n.GapsRaised()
	r.mu.Unlock()
	if !pendingLocked || raisedLocked != 0 {
		t.Fatalf("overdue gap, timer held off: GapPending %v, GapsRaised %d; want true, 0", pendingLocked, raisedLocked)
	}
	waitFor(t, 5*time.Second, "the timer to give the gap up", func() bool { return n.GapsRaised() == 1 })
	if !n.GapPending(0) {
		t.Fatal("GapPending false for a cache that has not flushed for the Gap raised")
	}
	if n.GapPending(1) {
		t.Fatal("GapPending true for a cache that flushed for every Gap, with no gap open")
	}
}

// TestDeafOriginOneFlushPerEpisode: a member the origin has declared dead
// (it probes us every round while it publishes) gives up, once the oldest
// missing sequence expires, everything missing at once — one Gap event
// per RepairTimeout or so, not one per announcement. Counted on a's
// heartbeat rounds: per-batch expiry raised about one Gap event per round
// after the first timeout (here 15 of 20 rounds).
func TestDeafOriginOneFlushPerEpisode(t *testing.T) {
	tune := func(o *Options) { o.RepairTimeout = 200 * time.Millisecond }
	a, atr, _ := faultNode(t, tune)
	b, _, bgaps := faultNode(t, tune, a.Addr())
	waitFor(t, 5*time.Second, "mesh ready", func() bool {
		return aliveCount(a) == 1 && aliveCount(b) == 1 && a.Ready() && b.Ready()
	})
	atr.block(b.Addr()) // a hears nothing from b
	rounds := func() int { return deadRounds(a, b.ID()) }
	waitFor(t, 10*time.Second, "a declares b dead", func() bool { return rounds() > 0 })
	ev0, _, _ := bgaps.snapshot()
	const publishRounds = 20
	for i := range publishRounds {
		r0 := rounds()
		if err := a.Publish(context.Background(), []byte(fmt.Sprintf("deaf:%d", i)), false); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, "a heartbeat round", func() bool { return rounds() > r0 })
	}
	ev, _, _ := bgaps.snapshot()
	events := ev - ev0
	// 20 rounds of 40 ms are 800 ms, four RepairTimeouts: one event per
	// timeout plus a round of announcement each is 3 or 4.
	if events == 0 || events > publishRounds/3 {
		t.Fatalf("%d Gap events over %d rounds of publishing to a member the origin declared dead; want 1..%d", events, publishRounds, publishRounds/3)
	}
	t.Logf("%d Gap events over %d rounds", events, publishRounds)
}

// deadRounds is how many heartbeat rounds n has counted since it declared
// member id dead, or -1 while id is not dead there.
func deadRounds(n *Node, id uint64) int {
	n.members.mu.Lock()
	defer n.members.mu.Unlock()
	if e := n.members.members[id]; e != nil && e.State == StateDead {
		return e.deadRounds
	}
	return -1
}
