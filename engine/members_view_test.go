package engine

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/warpmesh/warpmesh/codec"
	"github.com/warpmesh/warpmesh/engine/internal/swim"
)

// fullView is the fan-out view and the state counts recomputed from the
// whole table, as the table kept them before they were incremental.
func fullView(m *membership) (ids []uint64, live []string, allMC bool, counts [StateLeft + 1]int) {
	allMC = true
	for id, e := range m.members {
		if !e.validated {
			continue
		}
		counts[e.State]++
		if e.State == StateAlive || e.State == StateSuspect {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		e := m.members[id]
		live = append(live, e.Addr.String())
		if e.heardMulticast.IsZero() {
			allMC = false
		}
	}
	if len(ids) == 0 {
		allMC = false
	}
	return
}

// TestIncrementalView: through random joins, moves, suspicions, deaths,
// leaves, group receptions, expiries and evictions, the published view
// and Stats' counts equal what a full walk of the table gives, and a
// change is visible at the next Load.
func TestIncrementalView(t *testing.T) {
	for variant := range 4 {
		swimMode, group := variant&1 == 1, variant&2 == 2
		cfg := &config{}
		cfg.Heartbeat, cfg.SuspectAfter, cfg.DeadAfter = 100*time.Millisecond, 500*time.Millisecond, time.Second
		m := newMembership(1, cfg, newEventQueue())
		m.maxValid, m.maxPending = 48, 16
		if swimMode {
			cfg.DirectLimit = 4
		}
		rng := rand.New(rand.NewPCG(1, 2))
		now := time.Now()
		epochs := map[uint64]uint64{}
		for step := range 4000 {
			now = now.Add(time.Duration(rng.IntN(60)) * time.Millisecond)
			id := uint64(2 + rng.IntN(64))
			addr := phantom(int(id) + 64*rng.IntN(2)) // sometimes a move
			switch op := rng.IntN(10); op {
			case 0, 1, 2:
				m.validated(id, epochs[id]+1, addr, addr, uint64(step), now)
				if group {
					m.heard(id, epochs[id]+1, 0, addr, true, now)
				}
			case 3:
				m.heard(id, epochs[id]+1, 0, addr, group || rng.IntN(2) == 0, now)
			case 4:
				m.left(id, epochs[id]+1, now)
			case 5:
				m.mu.Lock()
				if e := m.members[id]; e != nil && e.validated {
					a := swim.Action{Kind: swim.Changed, ID: id, State: swim.State(1 + rng.IntN(3)), Incarnation: e.Incarnation + 1}
					m.applyChangedLocked(&a, now)
				}
				m.mu.Unlock()
			case 6:
				d := codec.DigestEntry{ID: id, Epoch: epochs[id] + 1, Incarnation: uint64(step), Addr: addr, State: StateLeft}
				m.gossip(&d, 1, 0, false, now)
			case 7:
				if group {
					now = now.Add(cfg.SuspectAfter / 2) // group reception expires
				}
				m.tick(now)
			case 8:
				epochs[id]++ // a restart: the next RESPONSE brings a new epoch
			case 9:
				m.heard(uint64(1000+step), 1, 0, phantom(1000+step), false, now) // strangers fill the pending pool
			}
			if rng.IntN(3) > 0 {
				continue // let changes pile up between reads, as in a join wave
			}
			v := m.view.Load()
			ids, live, allMC, counts := fullView(m)
			var got []string
			for _, a := range v.live {
				got = append(got, a.String())
			}
			if !slices.Equal(v.ids, ids) || !slices.Equal(got, live) || v.allMulticast != allMC {
				t.Fatalf("swim %v group %v step %d: view ids %v live %v allMC %v; table says %v %v %v", swimMode, group, step, v.ids, got, v.allMulticast, ids, live, allMC)
			}
			var s Stats
			m.count(&s)
			if s.MembersAlive != counts[StateAlive] || s.MembersSuspect != counts[StateSuspect] ||
				s.MembersDead != counts[StateDead] || s.MembersLeft != counts[StateLeft] ||
				s.MembersUnvalidated != len(m.members)-m.validatedN {
				t.Fatalf("swim %v step %d: counts %+v, table says %v", swimMode, step, s, counts)
			}
			if len(m.dead) != counts[StateDead] || m.liveMembers() != len(ids) {
				t.Fatalf("swim %v step %d: %d in the dead set, %d live by count; table says %d dead, %d live",
					swimMode, step, len(m.dead), m.liveMembers(), counts[StateDead], len(ids))
			}
		}
	}
}

// A view read with nothing changed since the last read is the same
// pointer and costs no allocation.
func TestViewLoadAlloc(t *testing.T) {
	m := capTable()
	now := time.Now()
	for i := range 10 {
		m.validated(uint64(10+i), 1, phantom(i), phantom(i), 1, now)
	}
	v := m.view.Load()
	if allocs := testing.AllocsPerRun(100, func() {
		if m.view.Load() != v {
			t.Fatal("a new view with no change")
		}
	}); allocs != 0 {
		t.Fatalf("%v allocations per Load", allocs)
	}
	if len(v.ids) != 10 {
		t.Fatalf("view has %d members", len(v.ids))
	}
}
