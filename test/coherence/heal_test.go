package coherence

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warpmesh/warpmesh/engine"
	"github.com/warpmesh/warpmesh/internal/testnet"
)

// TestDeafOriginHeal is the inbound-only partition both ways round, at
// the engine level, and across its heal: node 0 hears no one (everything
// sent to it is dropped) while every other node hears it, for longer than
// the 10 × DeadAfter after which a node forgets a dead member, then the
// cut heals, twice. Every node publishes a key a millisecond all along.
// Each key must be applied or covered by a Gap event by every other node
// within the bound of its Publish — or, for a key node 0 could not hear,
// within the bound of the heal: the oracle's rule (see check), here
// without caches, so a failure names the engine.
//
// Long variant only (WARPMESH_COHERENCE_LONG=1): it still fails now and
// then — a few keys node 0 published in the last 60-200 ms before a heal
// are neither applied nor flagged in time by one receiver (open, see
// RESULTS.md, "Open: the last keys before a heal").
func TestDeafOriginHeal(t *testing.T) {
	if !long() {
		t.Skip("long variant only (WARPMESH_COHERENCE_LONG=1): an open finding, see RESULTS.md")
	}
	tm := deafTiming{10 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 100 * time.Millisecond, 1500 * time.Millisecond, 0}
	if raceSlack > 250*time.Millisecond {
		// The race detector slows every goroutine several times over: at
		// 10 ms heartbeats the nodes then falsely declare each other
		// dead after the heal. Twice the timeouts, the cut still longer
		// than the forget time.
		tm = deafTiming{20 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond, 200 * time.Millisecond, 2500 * time.Millisecond, 0}
	}
	rounds := 2
	if long() {
		rounds = 6
	}
	healAll(t, 4, tm, rounds)
}

// healNode is one node of a heal run and what it applied and raised.
type healNode struct {
	node  *engine.Node
	conn  *faultyConn
	id    atomic.Uint64
	seqOf []atomic.Uint64  // own key i went out in this sequence
	pubAt []atomic.Int64   // own key i was published at
	got   [][]atomic.Int64 // got[o][i]: when node o's key i was applied here
	mu    sync.Mutex
	gaps  []gapAt
	dead  map[uint64][]int64 // member id → when this node declared it dead
	joins map[uint64][]int64 // member id → when this node took it (back) in
}

func healAll(t *testing.T, size int, tm deafTiming, rounds int) {
	const every = time.Millisecond
	settle := time.Second // between a heal and the next cut
	keys := int((time.Duration(rounds)*(tm.cut+settle) + time.Second) / every)
	bound := int64(tm.bound())
	fab := &fabric{}
	base := time.Now()
	now := func() int64 { return int64(time.Since(base)) }
	ns := make([]*healNode, size)
	for i := range ns {
		hn := &healNode{seqOf: make([]atomic.Uint64, keys), pubAt: make([]atomic.Int64, keys), got: make([][]atomic.Int64, size),
			dead: map[uint64][]int64{}, joins: map[uint64][]int64{}}
		for o := range hn.got {
			hn.got[o] = make([]atomic.Int64, keys)
		}
		var err error
		if hn.conn, err = fab.listen(0); err != nil {
			t.Fatal(err)
		}
		ns[i] = hn
	}
	for i, hn := range ns {
		var peers []string
		for j := 0; j < i; j++ {
			peers = append(peers, ns[j].conn.LocalAddr().String())
		}
		o := engine.Options{
			Port: engine.AnyPort, UnicastOnly: true, Peers: peers, Transport: hn.conn, EchoLocal: true,
			Heartbeat: tm.heartbeat, SuspectAfter: tm.suspect, DeadAfter: tm.dead, RepairTimeout: tm.repair,
			Cluster: "coherence-heal", Logger: quietLogger,
		}
		o.OnInvalidate = func(inv engine.Invalidation) {
			if len(inv.Key) != 8 {
				return
			}
			src, k := int(inv.Key[0]), int(binary.BigEndian.Uint32(inv.Key[4:]))
			if src >= size || k >= keys {
				return
			}
			if inv.Origin == hn.id.Load() {
				hn.seqOf[k].Store(inv.Seq)
				return
			}
			hn.got[src][k].CompareAndSwap(0, now())
		}
		o.OnEvent = func(e engine.Event) {
			hn.mu.Lock()
			defer hn.mu.Unlock()
			switch e.Type {
			case engine.EventGap:
				hn.gaps = append(hn.gaps, gapAt{at: now(), gap: e.Gap})
			case engine.EventDead:
				hn.dead[e.Member.ID] = append(hn.dead[e.Member.ID], now())
			case engine.EventJoin:
				hn.joins[e.Member.ID] = append(hn.joins[e.Member.ID], now())
			}
		}
		n, err := engine.New(o)
		if err != nil {
			t.Fatal(err)
		}
		defer n.Close()
		hn.node = n
		hn.id.Store(n.ID())
	}
	testnet.WaitFor(t, 5*time.Second, "every node to see every other", func() bool {
		for _, hn := range ns {
			if hn.node.Stats().MembersAlive != size-1 {
				return false
			}
		}
		return true
	})

	deaf := &blockRule{from: map[netip.AddrPort]bool{}, to: map[netip.AddrPort]bool{ns[0].conn.LocalAddr(): true}}
	for _, hn := range ns[1:] {
		deaf.from[hn.conn.LocalAddr()] = true
	}
	type cutAt struct{ start, heal int64 }
	var cuts []cutAt
	cutKeys, healKeys := int(settle/every), int((settle+tm.cut)/every)
	tick := time.NewTicker(every)
	var key [8]byte
	for i := 0; i < keys; i++ {
		<-tick.C // the publishers' pace
		if r := i % healKeys; i < rounds*healKeys {
			switch r {
			case cutKeys:
				fab.setBlock(deaf)
				cuts = append(cuts, cutAt{start: now()})
			case 0:
				if len(cuts) > 0 {
					fab.setBlock(nil)
					cuts[len(cuts)-1].heal = now()
				}
			}
		}
		binary.BigEndian.PutUint32(key[4:], uint32(i))
		for j, hn := range ns {
			key[0] = byte(j)
			hn.pubAt[i].Store(now())
			if err := hn.node.Publish(context.Background(), key[:], false); err != nil {
				t.Fatal(err)
			}
		}
	}
	tick.Stop()
	if len(cuts) > 0 && cuts[len(cuts)-1].heal == 0 {
		fab.setBlock(nil)
		cuts[len(cuts)-1].heal = now()
	}
	<-time.After(time.Duration(bound)) // let the last keys' bound pass before judging

	// deadline is when node r must have applied or flagged node o's key i.
	deadline := func(o, r, i int) int64 {
		p := ns[o].pubAt[i].Load()
		d := p + bound
		if r == 0 && o != 0 {
			for _, c := range cuts {
				if p > c.start-bound && p < c.heal {
					d = max(d, c.heal+bound)
				}
			}
		}
		return d
	}
	total := 0
	for r, rn := range ns {
		rn.mu.Lock()
		for o, on := range ns {
			if o == r {
				continue
			}
			covered := func(seq uint64, by int64) bool {
				for _, g := range rn.gaps {
					if g.at <= by && g.gap.Origin == on.node.ID() && g.gap.Epoch == on.node.Epoch() && g.gap.First <= seq && seq <= g.gap.Last {
						return true
					}
				}
				return false
			}
			late, never := 0, 0
			var worst time.Duration
			for i := 0; i < keys; i++ {
				d := deadline(o, r, i)
				g := rn.got[o][i].Load()
				if g != 0 && g <= d || covered(on.seqOf[i].Load(), d) {
					continue
				}
				if g == 0 {
					never++
				} else {
					late++
					worst = max(worst, time.Duration(g-d))
				}
				if late+never <= 3 {
					flagged := "never"
					for _, gp := range rn.gaps {
						if gp.gap.Origin == on.node.ID() && gp.gap.First <= on.seqOf[i].Load() && on.seqOf[i].Load() <= gp.gap.Last {
							flagged = fmt.Sprintf("%v (%v, %d..%d)", dur(gp.at), gp.gap.Reason, gp.gap.First, gp.gap.Last)
							break
						}
					}
					phase := "outside the cuts"
					for _, c := range cuts {
						if p := on.pubAt[i].Load(); p >= c.start-bound && p < c.heal+bound {
							phase = fmt.Sprintf("cut %v–%v", dur(c.start), dur(c.heal))
						}
					}
					t.Errorf("node %d: node %d's key %d (seq %d) published at %v (%s), applied at %v, no Gap covering it by %v (flagged: %s)",
						r, o, i, on.seqOf[i].Load(), dur(on.pubAt[i].Load()), phase, dur(g), dur(d), flagged)
				}
			}
			if late+never > 0 {
				t.Errorf("node %d: %d of node %d's keys neither applied nor flagged by their deadline: %d applied late (worst %v past it), %d never applied", r, late+never, o, late, worst.Round(time.Millisecond), never)
			}
			total += late + never
		}
		rn.mu.Unlock()
	}
	// How each heal went: when every node had taken every other back.
	for k, c := range cuts {
		var slow time.Duration
		pair, until := "none", int64(1<<62)
		if k+1 < len(cuts) {
			until = cuts[k+1].start
		}
		for i, a := range ns {
			a.mu.Lock()
			for j, b := range ns {
				if a == b {
					continue
				}
				died := false
				for _, at := range a.dead[b.node.ID()] {
					died = died || at >= c.start && at < c.heal
				}
				if !died {
					continue // a did not lose b to this cut
				}
				back := false
				for _, at := range a.joins[b.node.ID()] {
					if at >= c.heal && at < until {
						back = true
						if d := time.Duration(at - c.heal); d > slow {
							slow, pair = d, fmt.Sprintf("%d took %d back", i, j)
						}
						break
					}
				}
				if !back {
					pair = fmt.Sprintf("%d never took %d back before the next cut or the end", i, j)
					slow = time.Duration(min(until, now()) - c.heal)
				}
			}
			a.mu.Unlock()
		}
		t.Logf("cut %v–%v: every node took back every other it had declared dead within %v of the heal (slowest: %s)", dur(c.start), dur(c.heal), slow.Round(time.Millisecond), pair)
	}
	for i, hn := range ns {
		st := hn.node.Stats()
		t.Logf("node %d: gap events %d, gaps detected %d, repaired %d, lost %d, NACKs sent %d, retransmitted %d, flow waits %d (timeouts %d), challenges %d (suppressed %d), validations %d",
			i, len(hn.gaps), st.GapsDetected, st.GapsRepaired, st.FramesLost, st.NacksSent, st.Retransmitted, st.FlowWaits, st.FlowTimeouts, st.ChallengesSent, st.ChallengesSuppressed, st.Validations)
	}
	if total > 0 {
		t.Errorf("%d keys neither applied nor flagged in time (bound %v)", total, time.Duration(bound))
	}
}
