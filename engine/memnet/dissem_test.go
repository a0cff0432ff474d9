package memnet_test

import (
	"context"
	"encoding/binary"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warpmesh/warpmesh/engine"
	"github.com/warpmesh/warpmesh/engine/memnet"
)

// envInt reads an integer knob of the diagnostic runs.
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// TestTreeOriginsDiag: a diagnostic of concurrent origins in relay trees,
// sized by WARPMESH_DISSEM_N (skipped without it).
func TestTreeOriginsDiag(t *testing.T) {
	size := envInt("WARPMESH_DISSEM_N", 0)
	if size == 0 {
		t.Skip("WARPMESH_DISSEM_N not set")
	}
	origins := envInt("WARPMESH_DISSEM_ORIGINS", 10)
	keys := envInt("WARPMESH_DISSEM_KEYS", 10_000)
	fanout := envInt("WARPMESH_DISSEM_FANOUT", 4)
	direct := envInt("WARPMESH_DISSEM_DIRECT", 32)
	hb := time.Duration(envInt("WARPMESH_DISSEM_HB_MS", 1000)) * time.Millisecond
	n := newNet(t, 91)
	var gaps atomic.Int64
	nodes := startMesh(t, n, size, []int{0, 1, 2}, func(i int) engine.Options {
		return engine.Options{
			Heartbeat:        hb,
			SuspectAfter:     5 * hb,
			DeadAfter:        10 * hb,
			DirectLimit:      direct,
			Fanout:           fanout,
			BatchSize:        8,
			PublishRing:      1 << 14,
			RetransmitBuffer: 256 << 10,
			ChallengeRate:    scaleChallengeRate(size),
			OnEvent: func(e engine.Event) {
				if e.Type == engine.EventGap {
					if gaps.Add(1) <= 5 {
						t.Logf("node %d Gap: %s origin %x %d missing in %d-%d", i, e.Gap.Reason, e.Gap.Origin, e.Gap.Missing, e.Gap.First, e.Gap.Last)
					}
				}
			},
		}
	})
	start := time.Now()
	waitMesh(t, 300*time.Second, nodes)
	waitFor(t, 60*time.Second, "every node ready", func() bool {
		for _, node := range nodes {
			if !node.Ready() {
				return false
			}
		}
		return true
	})
	t.Logf("N=%d converged in %v", size, time.Since(start).Round(time.Millisecond))
	time.Sleep(3 * hb) // settling, not synchronisation
	got := make([]atomic.Int64, size)
	for i, node := range nodes {
		node.OnInvalidate(func(engine.Invalidation) { got[i].Add(1) })
	}
	base := make([]engine.Stats, size)
	ebase := make([]memnet.Stats, size)
	for i, node := range nodes {
		base[i] = node.Stats()
	}
	pubs := make([]int, origins)
	isPub := map[int]bool{}
	for k := range pubs {
		pubs[k] = (k*size/origins + 3) % size
		isPub[pubs[k]] = true
	}
	nb := n.Stats()
	t0 := time.Now()
	for k, o := range pubs {
		go func() {
			key := make([]byte, 16)
			binary.BigEndian.PutUint64(key, uint64(k))
			for j := 0; j < keys; j++ {
				binary.BigEndian.PutUint64(key[8:], uint64(j))
				if err := nodes[o].Publish(context.Background(), key, false); err != nil {
					return
				}
			}
		}()
	}
	want := func(i int) int64 {
		w := int64(origins * keys)
		if isPub[i] {
			w -= int64(keys)
		}
		return w
	}
	short := 0
	for deadline := time.Now().Add(time.Duration(envInt("WARPMESH_DISSEM_LIMIT_S", 60)) * time.Second); ; {
		short = 0
		for i := range nodes {
			if got[i].Load() < want(i) {
				short++
			}
		}
		if short == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not synchronisation
	}
	el := time.Since(t0)
	_ = ebase
	var d engine.Stats
	var pubNacks, relNacks uint64
	for i, node := range nodes {
		s, b := node.Stats(), base[i]
		d.DataFrames += s.DataFrames - b.DataFrames
		d.Duplicates += s.Duplicates - b.Duplicates
		d.GapsDetected += s.GapsDetected - b.GapsDetected
		d.GapsRepaired += s.GapsRepaired - b.GapsRepaired
		d.NacksSent += s.NacksSent - b.NacksSent
		d.Retransmitted += s.Retransmitted - b.Retransmitted
		d.RetransmitsReceived += s.RetransmitsReceived - b.RetransmitsReceived
		d.RepairsServed += s.RepairsServed - b.RepairsServed
		d.IHavesSent += s.IHavesSent - b.IHavesSent
		d.GraftsSent += s.GraftsSent - b.GraftsSent
		d.PrunesSent += s.PrunesSent - b.PrunesSent
		d.GraftsAdopted += s.GraftsAdopted - b.GraftsAdopted
		d.HWMReceived += s.HWMReceived - b.HWMReceived
		d.Relayed += s.Relayed - b.Relayed
		d.FramesLost += s.FramesLost - b.FramesLost
		for r := range s.Drops {
			d.Drops[r] += s.Drops[r] - b.Drops[r]
		}
		for r := range s.GapsGivenUp {
			d.GapsGivenUp[r] += s.GapsGivenUp[r] - b.GapsGivenUp[r]
		}
		if isPub[i] {
			pubNacks += s.NacksReceived - b.NacksReceived
		} else {
			relNacks += s.NacksReceived - b.NacksReceived
		}
	}
	ns := n.Stats()
	t.Logf("N=%d, %d origins x %d keys: %d short after %v; copies %.3f; first %d dup %d relayed %d",
		size, origins, keys, short, el.Round(time.Millisecond), float64(d.DataFrames+d.Duplicates)/float64(max(d.DataFrames, 1)), d.DataFrames, d.Duplicates, d.Relayed)
	t.Logf("gaps detected %d repaired %d lost %d events %v; NACKs sent %d, received by origins %d, by others %d; retransmitted %d (applied %d), served by relays %d",
		d.GapsDetected, d.GapsRepaired, d.FramesLost, d.GapsGivenUp, d.NacksSent, pubNacks, relNacks, d.Retransmitted, d.RetransmitsReceived, d.RepairsServed)
	t.Logf("IHAVE %d GRAFT %d PRUNE %d adopted %d HWM in %d; engine drops %v; net drops %v (sent %d)",
		d.IHavesSent, d.GraftsSent, d.PrunesSent, d.GraftsAdopted, d.HWMReceived, d.Drops, func() [memnet.NumDropReasons]uint64 {
			var x [memnet.NumDropReasons]uint64
			for r := range x {
				x[r] = ns.Drops[r] - nb.Drops[r]
			}
			return x
		}(), ns.Sent-nb.Sent)
	if short != 0 || gaps.Load() != 0 {
		t.Errorf("%d nodes short, %d Gap events", short, gaps.Load())
	}
}
