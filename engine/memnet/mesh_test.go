package memnet_test

import (
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warpmesh/warpmesh/engine"
	"github.com/warpmesh/warpmesh/engine/memnet"
)

// Protocol tests: real engine nodes on a simulated network.

// 10% loss on every link, one publisher: at every receiver each key is
// applied or Gap-flagged; zero silent misses.
func TestLossyMeshNoSilentMiss(t *testing.T) {
	total := 100_000
	if testing.Short() {
		total = 20_000
	}
	n := newNet(t, 10)
	if err := n.SetDefaultLink(memnet.Link{Loss: 0.10}); err != nil {
		t.Fatal(err)
	}
	nodes := startMesh(t, n, 5, []int{0}, func(i int) engine.Options {
		return engine.Options{
			Heartbeat:    50 * time.Millisecond,
			SuspectAfter: time.Second, DeadAfter: 2 * time.Second, // loss must not kill members
			RepairTimeout: 2 * time.Second,
			EchoLocal:     i == 0,
			PublishRing:   1 << 16,
		}
	})
	waitMesh(t, 10*time.Second, nodes)
	pub, receivers := nodes[0], nodes[1:]
	cov := newCoverage(pub, total, receivers...)

	start := time.Now()
	publishIndexed(t, pub, 0, total)
	cov.waitSettled(t, 15*time.Second, 0, total)
	elapsed := time.Since(start)

	var applied, flagged int
	for r, node := range receivers {
		a, f, _ := cov.account(r, 0, total)
		applied += a
		flagged += f
		t.Logf("receiver %d: applied %d flagged %d silent 0 | %s", r, a, f, statsLine(node))
	}
	ps := pub.Stats()
	ns := n.Stats()
	t.Logf("%d invalidations × %d receivers in %v: applied %d, flagged %d, silent misses 0; publisher retransmitted %d frames for %d NACKs; network lost %d of %d datagrams",
		total, len(receivers), elapsed.Round(time.Millisecond), applied, flagged, ps.Retransmitted, ps.NacksReceived,
		ns.Drops[memnet.DropLoss], ns.Sent+ns.Duplicated)
	if ps.Retransmitted == 0 {
		t.Errorf("10%% loss but nothing was retransmitted: the repair path did not run")
	}
}

// A partition longer than DeadAfter, then Heal: each side sees the other
// dead and then back, and invalidations published during the partition
// are applied (or Gap-flagged) on the other side after the heal.
func TestPartitionAndHeal(t *testing.T) {
	n := newNet(t, 20)
	const hb = 25 * time.Millisecond
	nodes := startMesh(t, n, 4, []int{0, 2}, func(i int) engine.Options {
		return engine.Options{
			Heartbeat:     hb,
			EchoLocal:     true,
			RepairTimeout: 3 * time.Second,
		}
	})
	logs := make([]*eventLog, len(nodes))
	for i, node := range nodes {
		logs[i] = recordEvents(node)
	}
	waitMesh(t, 10*time.Second, nodes)
	a, b, c, d := nodes[0], nodes[1], nodes[2], nodes[3]
	const perPhase = 2000
	covA := newCoverage(a, 2*perPhase, c, d)
	covC := newCoverage(c, 2*perPhase, a, b)

	sideAB := []netip.AddrPort{simAddr(0), simAddr(1)}
	sideCD := []netip.AddrPort{simAddr(2), simAddr(3)}
	cut := time.Now()
	n.Partition(sideAB, sideCD)
	// Published at once: the other side is still believed alive.
	publishIndexed(t, a, 0, perPhase)
	publishIndexed(t, c, 0, perPhase)

	across := func(i int) []int {
		if i < 2 {
			return []int{2, 3}
		}
		return []int{0, 1}
	}
	waitFor(t, 10*time.Second, "each side to see the other dead", func() bool {
		for i := range nodes {
			for _, j := range across(i) {
				if !logs[i].sawInOrder(nodes[j].ID(), engine.EventDead) {
					return false
				}
			}
		}
		return true
	})
	detect := time.Since(cut)
	// Published while the other side is known dead.
	publishIndexed(t, a, perPhase, 2*perPhase)
	publishIndexed(t, c, perPhase, 2*perPhase)
	for _, x := range []*engine.Node{a, c} {
		waitFor(t, 5*time.Second, "publishers to flush", func() bool { return x.Stats().RecordsSent >= 2*perPhase })
	}
	if got := c.Stats().RecordsReceived; got != 0 {
		t.Errorf("c applied %d invalidations from across the partition", got)
	}

	heal := time.Now()
	n.Heal()
	waitFor(t, 10*time.Second, "each side to see the other join again", func() bool {
		for i := range nodes {
			for _, j := range across(i) {
				if !logs[i].sawInOrder(nodes[j].ID(), engine.EventDead, engine.EventJoin) {
					return false
				}
			}
		}
		return true
	})
	rejoin := time.Since(heal)
	covA.waitSettled(t, 10*time.Second, 0, 2*perPhase)
	covC.waitSettled(t, 10*time.Second, 0, 2*perPhase)
	for _, cov := range []*coverage{covA, covC} {
		for r, lr := range cov.recv {
			ap, fl, _ := cov.account(r, 0, 2*perPhase)
			t.Logf("publisher %x → %x: applied %d flagged %d silent 0 | %s", cov.pub.ID()>>48, lr.node.ID()>>48, ap, fl, statsLine(lr.node))
		}
	}
	t.Logf("dead detected %v after the cut (DeadAfter %v); rejoined %v after heal; events a→c: %v",
		detect.Round(time.Millisecond), 6*hb, rejoin.Round(time.Millisecond), logs[0].of(c.ID()))
	if detect < 6*hb {
		t.Errorf("declared dead after %v, before DeadAfter %v", detect, 6*hb)
	}
}

// A large mesh with relaying: everyone learns everyone, every invalidation
// reaches every node; report redundancy.
//
// Heartbeats go to every known member each round (O(n²) datagrams), so
// the mesh shrinks under -race, where 200 nodes overload 2 cores, miss
// heartbeats and churn (see the report to the engine's owner).
func TestLargeMesh(t *testing.T) {
	size, perPub, hb := 200, 300, time.Second
	if raceEnabled || testing.Short() {
		size, perPub, hb = 40, 100, 500*time.Millisecond // 64 did not converge in 60 s in a loaded full -race run
	}
	n := newNet(t, 30)
	nodes := startMesh(t, n, size, []int{0, 1}, func(i int) engine.Options {
		return engine.Options{
			Heartbeat:        hb,
			SuspectAfter:     5 * hb, // a loaded simulation must not churn
			DeadAfter:        10 * hb,
			DirectLimit:      8,
			Fanout:           3,
			BatchSize:        8,
			PublishRing:      1 << 14,
			RetransmitBuffer: 64 << 10,
		}
	})
	start := time.Now()
	waitMesh(t, 60*time.Second, nodes) // 30 s was not enough once under a loaded full -race run
	converge := time.Since(start)

	pubs := []int{0, size / 2, size - 1}
	got := make([]atomic.Int64, size)
	isPub := make(map[uint64]bool)
	for _, p := range pubs {
		isPub[nodes[p].ID()] = true
	}
	for i, node := range nodes {
		node.OnInvalidate(func(inv engine.Invalidation) {
			if isPub[inv.Origin] {
				got[i].Add(1)
			}
		})
	}
	base := make([]engine.Stats, size)
	for i, node := range nodes {
		base[i] = node.Stats()
	}
	start = time.Now()
	for k, p := range pubs {
		publishIndexed(t, nodes[p], k*perPub, (k+1)*perPub)
	}
	want := func(i int) int64 {
		w := int64(len(pubs) * perPub)
		for _, p := range pubs {
			if p == i {
				w -= int64(perPub)
			}
		}
		return w
	}
	waitFor(t, 20*time.Second, "every invalidation at every node", func() bool {
		for i := range nodes {
			if got[i].Load() < want(i) {
				return false
			}
		}
		return true
	})
	spread := time.Since(start)
	var data, dups, relayed, gaps, detected, rtxIn, rtxOut, nacks uint64
	for i, node := range nodes {
		s := node.Stats()
		data += s.DataFrames - base[i].DataFrames
		dups += s.Duplicates - base[i].Duplicates
		relayed += s.Relayed - base[i].Relayed
		detected += s.GapsDetected - base[i].GapsDetected
		rtxIn += s.RetransmitsReceived - base[i].RetransmitsReceived
		rtxOut += s.Retransmitted - base[i].Retransmitted
		nacks += s.NacksSent - base[i].NacksSent
		gaps += s.GapEvents()
		if g := got[i].Load(); g != want(i) {
			t.Errorf("node %d applied %d invalidations, want %d (each once)", i, g, want(i))
		}
	}
	if gaps != 0 {
		t.Errorf("%d Gap events on a loss-free network", gaps)
	}
	ns := n.Stats()
	t.Logf("%d nodes converged in %v; %d invalidations from %d publishers reached all in %v",
		size, converge.Round(time.Millisecond), len(pubs)*perPub, len(pubs), spread.Round(time.Millisecond))
	t.Logf("DATA frames first copies %d, duplicates %d, relayed %d: redundancy (data+dup)/data = %.3f; network: %d datagrams, drops %v",
		data, dups, relayed, float64(data+dups)/float64(data), ns.Sent, ns.Drops)
	t.Logf("repair traffic on a loss-free network: gaps detected %d, NACKs %d, retransmissions applied %d",
		detected, nacks, rtxIn)
	// Copies per first copy, less those repair sent (every retransmission
	// not applied is at most one duplicate): the tree alone gives 1, a
	// flood through Fanout 3 about 3. With repairs counted it measured
	// 1.13-1.39 at 200 nodes, 1.85 at 64 under -race, and 3.6 at 64 in a
	// loaded -race run: relay reordering opens gaps on a loss-free network
	// and their repairs duplicate frames.
	repairDups := rtxOut - min(rtxIn, rtxOut)
	r := float64(data+dups-min(dups, repairDups)) / float64(data)
	t.Logf("relay redundancy without repair copies: %.3f (retransmitted %d, applied %d)", r, rtxOut, rtxIn)
	if r > 1.5 {
		t.Errorf("relay redundancy %.3f, want <= 1.5", r)
	}
}
