package memnet_test

import (
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warpmesh/warpmesh/engine"
)

// TestRestartWaveTimeline is a diagnostic, run only with
// WARPMESH_REWAVE=N (e.g. 1000; WARPMESH_SCALE_KEYRING=1 for a keyed
// mesh): a cold start of N nodes as in TestScale, then the same 10%
// restart wave (same address, new id and epoch), logging once a period
// where the mesh stands — how many (observer, old id) pairs still list
// the crashed incarnation alive or suspect, how many (observer, new id)
// pairs know the newcomer alive, how many newcomers know everyone, how
// many are ready — and when each reached its end, with the suspicions
// and deaths of the wave by whom they are about. WARPMESH_REWAVE_PUBLISH=1
// publishes first as TestScale does (1 origin, then 10, 10k keys each,
// at most 30 s per phase), so the wave starts in the suspicion storm
// that publishing leaves on a loaded host, as TestScale's does. It
// asserts only that the wave converges within WARPMESH_SCALE_CONVERGE
// (default 3m). Unlike TestScale's converge, which counts members alive,
// it names them: a node still listing a crashed id alive hides there a
// newcomer it does not know.
func TestRestartWaveTimeline(t *testing.T) {
	size, err := strconv.Atoi(os.Getenv("WARPMESH_REWAVE"))
	if err != nil || size < 40 {
		t.Skip("diagnostic: set WARPMESH_REWAVE=N (N >= 40)")
	}
	period := time.Second
	if p, err := time.ParseDuration(os.Getenv("WARPMESH_SCALE_PERIOD")); err == nil && p > 0 {
		period = p
	}
	limit := 3 * time.Minute
	if d, err := time.ParseDuration(os.Getenv("WARPMESH_SCALE_CONVERGE")); err == nil && d > 0 {
		limit = d
	}
	m := newScaleMesh(t, size, period)
	ev := m.ev
	for i := range m.nodes {
		m.start(i)
	}
	cold := m.converge("cold start", limit)
	t.Logf("N=%d: cold start %.1f periods", size, cold.Seconds()/period.Seconds())
	time.Sleep(20 * period) // settling, as TestScale does before its wave; not synchronisation
	if os.Getenv("WARPMESH_REWAVE_PUBLISH") == "1" {
		rewavePublish(t, m, size)
	}
	d0, s0, _ := ev.counts()

	wave := max(size/10, 1)
	waved := make([]int, 0, wave)
	isWaved := make([]bool, size)
	isWaved[size/2] = true // TestScale spares its publishers
	for i := 0; i < 10; i++ {
		isWaved[(i*size/10+3)%size] = true
	}
	spared := slices.Clone(isWaved)
	for i := 0; i < wave; i++ {
		j := 3 + i*(size-3)/wave
		for isWaved[j] {
			j = 3 + (j-3+1)%(size-3)
		}
		waved = append(waved, j)
		isWaved[j] = true
	}
	for i := range isWaved {
		isWaved[i] = isWaved[i] && !spared[i]
	}
	oldID := map[uint64]bool{}
	for _, j := range waved {
		oldID[m.nodes[j].ID()] = true
		m.nodes[j].Abort()
	}
	for _, j := range waved {
		m.start(j)
	}
	start := time.Now()
	newID := map[uint64]bool{}
	for _, j := range waved {
		newID[m.nodes[j].ID()] = true
	}
	// Suspicions and deaths by whom they are about: the crashed old ids
	// (expected), the newcomers, or members that never crashed (false).
	var evMu sync.Mutex
	var cnt [3][2]int // [old, new, other][suspect, dead]
	for _, node := range m.nodes {
		node.OnEvent(func(e engine.Event) {
			k := 2
			if oldID[e.Member.ID] {
				k = 0
			} else if newID[e.Member.ID] {
				k = 1
			}
			evMu.Lock()
			switch e.Type {
			case engine.EventSuspect:
				cnt[k][0]++
			case engine.EventDead:
				cnt[k][1]++
			}
			evMu.Unlock()
		})
	}
	defer func() {
		evMu.Lock()
		t.Logf("events in the wave: old ids suspect %d dead %d; newcomers suspect %d dead %d; others suspect %d dead %d",
			cnt[0][0], cnt[0][1], cnt[1][0], cnt[1][1], cnt[2][0], cnt[2][1])
		evMu.Unlock()
	}()
	var tOld, tNew, tFull, tReady, tConv time.Duration
	mark := func(at *time.Duration, done bool) {
		if done && *at == 0 {
			*at = time.Since(start)
		}
	}
	for {
		oldLive, oldSus, newKnown, newSus, fullNew, ready, lo := 0, 0, 0, 0, 0, 0, size
		loNode, unvNode, unvMax := 0, 0, 0
		var unval int
		for i, node := range m.nodes {
			alive := 0
			for _, mb := range node.Members() {
				switch {
				case oldID[mb.ID] && mb.State == engine.StateAlive:
					oldLive++
				case oldID[mb.ID] && mb.State == engine.StateSuspect:
					oldSus++
				case newID[mb.ID] && mb.State == engine.StateAlive:
					newKnown++
				case newID[mb.ID] && mb.State == engine.StateSuspect:
					newSus++
				}
				if mb.State == engine.StateAlive && !oldID[mb.ID] {
					alive++
				}
			}
			if isWaved[i] && alive == size-1 {
				fullNew++
			}
			if node.Ready() {
				ready++
			}
			s := node.Stats()
			if s.MembersAlive < lo {
				loNode = i
			}
			if s.MembersUnvalidated > unvMax {
				unvMax, unvNode = s.MembersUnvalidated, i
			}
			lo = min(lo, s.MembersAlive)
			unval += s.MembersUnvalidated
		}
		wantNew := wave * (size - 1)
		mark(&tOld, oldLive+oldSus == 0)
		mark(&tNew, newKnown == wantNew)
		mark(&tFull, fullNew == wave)
		mark(&tReady, ready == size)
		mark(&tConv, lo == size-1 && ready == size)
		for _, i := range []int{loNode, unvNode} {
			s := m.nodes[i].Stats()
			t.Logf("  node %d (waved %v): alive %d suspect %d dead %d left %d unvalidated %d vouched %d; challenges %d (%d suppressed), responses %d, validations %d, refused %d",
				i, isWaved[i], s.MembersAlive, s.MembersSuspect, s.MembersDead, s.MembersLeft, s.MembersUnvalidated, s.Vouched,
				s.ChallengesSent, s.ChallengesSuppressed, s.ResponsesSent, s.Validations, s.MembersRefused)
		}
		if miss := wave*(size-1) - newKnown; miss > 0 && miss <= 4 {
			byAddr := map[netip.AddrPort]int{}
			for _, j := range waved {
				byAddr[simAddr(j)] = j
			}
			for i, node := range m.nodes {
				held := map[int][]string{}
				has := map[int]bool{}
				for _, mb := range node.Members() {
					if j, ok := byAddr[mb.Addr]; ok && j != i {
						held[j] = append(held[j], fmt.Sprintf("%x old=%v new=%v %v", mb.ID, oldID[mb.ID], newID[mb.ID], mb.State))
						has[j] = has[j] || (newID[mb.ID] && mb.State == engine.StateAlive)
					}
				}
				for _, j := range waved {
					if j == i {
						continue
					}
					if !has[j] {
						t.Logf("  node %d (waved %v) lacks newcomer %d (%x): holds %v at its address; alive %d", i, isWaved[i], j, m.nodes[j].ID(), held[j], node.Stats().MembersAlive)
					}
				}
			}
		}
		d, s, _ := ev.counts()
		el := time.Since(start)
		t.Logf("t=%5.1fp old alive %5d suspect %5d | new known %6d/%d (suspect %d) | newcomers knowing all %3d/%d | ready %4d/%d | min alive %d | unvalidated %d | suspicions %d deaths %d",
			el.Seconds()/period.Seconds(), oldLive, oldSus, newKnown, wantNew, newSus, fullNew, wave, ready, size, lo, unval, s-s0, d-d0)
		if tOld > 0 && tNew > 0 && tFull > 0 && tReady > 0 && tConv > 0 {
			break
		}
		if el > limit {
			t.Fatalf("restart wave not converged after %v", limit)
		}
		time.Sleep(period) // polling interval, not synchronisation
	}
	p := func(d time.Duration) float64 { return d.Seconds() / period.Seconds() }
	t.Logf("N=%d restart wave (%d nodes), in periods: old ids gone everywhere %.1f; new ids known alive everywhere %.1f; newcomers know all %.1f; all ready %.1f; TestScale's converge condition %.1f",
		size, wave, p(tOld), p(tNew), p(tFull), p(tReady), p(tConv))
}

// rewavePublish publishes as TestScale does before its wave: one origin,
// then ten, 10k keys each, and waits until every node has them all.
func rewavePublish(t *testing.T, m *scaleMesh, size int) {
	got := make([]atomic.Int64, size)
	for i, node := range m.nodes {
		id := node.ID()
		node.OnInvalidate(func(inv engine.Invalidation) {
			if inv.Origin != id { // scaleMesh nodes run EchoLocal
				got[i].Add(1)
			}
		})
	}
	run := func(origins []int, keys int) {
		for i := range got {
			got[i].Store(0)
		}
		t0 := time.Now()
		m.publishFrom(origins, keys)
		complete := func() bool {
			for i := range got {
				want := int64(len(origins) * keys)
				if slices.Contains(origins, i) {
					want -= int64(keys)
				}
				if got[i].Load() < want {
					return false
				}
			}
			return true
		}
		for !complete() && time.Since(t0) < 30*time.Second {
			time.Sleep(10 * time.Millisecond) // polling interval, not synchronisation
		}
		_, s, _ := m.ev.counts()
		t.Logf("published %d origins in %v; suspicions so far %d", len(origins), time.Since(t0).Round(time.Millisecond), s)
	}
	run([]int{size / 2}, 10_000)
	ten := make([]int, 10)
	for i := range ten {
		ten[i] = (i*size/10 + 3) % size
	}
	run(ten, 10_000)
}
