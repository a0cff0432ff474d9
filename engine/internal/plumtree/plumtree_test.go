package plumtree

import (
	"net/netip"
	"testing"
	"time"
)

var (
	t0     = time.Unix(1000, 0)
	params = Params{
		AnnounceInterval: 10 * time.Millisecond,
		GraftTimeout:     30 * time.Millisecond,
		GraftGiveUp:      100 * time.Millisecond,
		PruneHold:        50 * time.Millisecond,
		MaxOrigins:       4,
		MaxPerRound:      2,
	}
	peerA = Peer{ID: 0xA, Addr: netip.MustParseAddrPort("10.0.0.10:1")}
	peerB = Peer{ID: 0xB, Addr: netip.MustParseAddrPort("10.0.0.11:1")}
)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

// step is one input to a Machine in a table-driven scenario, with what
// Tick must then decide.
type step struct {
	at      int // ms after t0
	held    *Entry
	ihave   *Entry
	from    Peer
	tick    bool
	want    []Action
	next    int // ms after t0 of the next deadline; -1: none
	wanting uint64
}

func TestScenarios(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"held origins are announced once, in rounds", []step{
			{at: 0, held: &Entry{1, 1, 5}},
			{at: 0, held: &Entry{2, 1, 3}},
			{at: 0, held: &Entry{3, 1, 9}},
			{at: 0, tick: true, want: []Action{{Kind: SendIHave, Entry: Entry{1, 1, 5}}, {Kind: SendIHave, Entry: Entry{2, 1, 3}}}, next: 10},
			{at: 5, tick: true, next: 10}, // rate bound: the third waits
			{at: 10, tick: true, want: []Action{{Kind: SendIHave, Entry: Entry{3, 1, 9}}}, next: -1},
			{at: 20, tick: true, next: -1}, // nothing new: nothing announced
			{at: 21, held: &Entry{1, 1, 7}},
			{at: 21, tick: true, want: []Action{{Kind: SendIHave, Entry: Entry{1, 1, 7}}}, next: -1},
		}},
		{"an announcement not followed by the frames is grafted", []step{
			{at: 0, held: &Entry{1, 1, 5}},
			{at: 0, tick: true, want: []Action{{Kind: SendIHave, Entry: Entry{1, 1, 5}}}, next: -1},
			{at: 1, ihave: &Entry{1, 1, 9}, from: peerA},
			{at: 1, tick: true, next: 31, wanting: 1},
			{at: 31, tick: true, want: []Action{{Kind: SendGraft, To: peerA, Entry: Entry{1, 1, 6}}}, next: 131, wanting: 1},
			{at: 40, held: &Entry{1, 1, 9}}, // the graft brought them
			{at: 40, tick: true, want: []Action{{Kind: SendIHave, Entry: Entry{1, 1, 9}}}, next: -1},
		}},
		{"frames that arrive in time need no graft", []step{
			{at: 0, ihave: &Entry{1, 1, 9}, from: peerA},
			{at: 0, tick: true, next: 30, wanting: 1},
			{at: 20, held: &Entry{1, 1, 9}},
			{at: 30, tick: true, want: []Action{{Kind: SendIHave, Entry: Entry{1, 1, 9}}}, next: -1},
		}},
		{"an announcement of what is held is ignored", []step{
			{at: 0, held: &Entry{1, 1, 9}},
			{at: 0, ihave: &Entry{1, 1, 9}, from: peerA},
			{at: 0, tick: true, want: []Action{{Kind: SendIHave, Entry: Entry{1, 1, 9}}}, next: -1},
		}},
		{"a graft that brings nothing is dropped", []step{
			{at: 0, ihave: &Entry{1, 1, 4}, from: peerB},
			{at: 30, tick: true, want: []Action{{Kind: SendGraft, To: peerB, Entry: Entry{1, 1, 1}}}, next: 130, wanting: 1},
			{at: 130, tick: true, next: -1},
			{at: 131, ihave: &Entry{1, 1, 4}, from: peerA}, // wanted again
			{at: 161, tick: true, want: []Action{{Kind: SendGraft, To: peerA, Entry: Entry{1, 1, 1}}}, next: 261, wanting: 1},
		}},
		{"a later epoch forgets the earlier want", []step{
			{at: 0, ihave: &Entry{1, 1, 4}, from: peerA},
			{at: 1, held: &Entry{1, 2, 3}},
			{at: 1, tick: true, want: []Action{{Kind: SendIHave, Entry: Entry{1, 2, 3}}}, next: -1},
			{at: 40, tick: true, next: -1},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := New(params)
			for i, s := range tc.steps {
				now := at(s.at)
				switch {
				case s.held != nil:
					m.Held(s.held.Origin, s.held.Epoch, s.held.Seq, peerA.Addr)
				case s.ihave != nil:
					held := uint64(0)
					if o := m.origins[s.ihave.Origin]; o != nil && o.epoch == s.ihave.Epoch {
						held = o.held
					}
					m.IHave(s.from, *s.ihave, held, now)
				case s.tick:
					got, next := m.Tick(now, nil)
					if len(got) != len(s.want) {
						t.Fatalf("step %d: actions %+v, want %+v", i, got, s.want)
					}
					for j := range got {
						if got[j] != s.want[j] {
							t.Fatalf("step %d: action %d %+v, want %+v", i, j, got[j], s.want[j])
						}
					}
					wantNext := time.Time{}
					if s.next >= 0 {
						wantNext = at(s.next)
					}
					if !next.Equal(wantNext) {
						t.Fatalf("step %d: next %v, want %v", i, next.Sub(t0), wantNext.Sub(t0))
					}
					if s.wanting != 0 && !m.Wanting(s.wanting) {
						t.Fatalf("step %d: origin %d not wanted", i, s.wanting)
					}
				}
			}
		})
	}
}

// TestGraftNow: a want is grafted at once when the driver's repair gave
// up on the parent, once; without a want there is nothing to graft.
func TestGraftNow(t *testing.T) {
	m := New(params)
	if _, ok := m.GraftNow(1, t0); ok {
		t.Fatal("graft without a want")
	}
	m.Held(1, 1, 3, peerA.Addr)
	m.IHave(peerB, Entry{Origin: 1, Epoch: 1, Seq: 9}, 3, t0)
	a, ok := m.GraftNow(1, at(1))
	if want := (Action{Kind: SendGraft, To: peerB, Entry: Entry{Origin: 1, Epoch: 1, Seq: 4}}); !ok || a != want {
		t.Fatalf("GraftNow = %+v, %v; want %+v", a, ok, want)
	}
	if _, ok := m.GraftNow(1, at(2)); ok {
		t.Fatal("grafted twice")
	}
	if acts, next := m.Tick(at(2), nil); len(acts) != 1 || acts[0].Kind != SendIHave || !next.Equal(at(1).Add(params.GraftGiveUp)) {
		t.Fatalf("Tick after GraftNow: %+v, next %v", acts, next.Sub(t0))
	}
}

func TestGraftPruneReset(t *testing.T) {
	m := New(params)
	e := Entry{Origin: 1, Epoch: 1, Seq: 5}
	for _, p := range []Peer{peerA, peerA, peerB} {
		if !m.Graft(p, e) {
			t.Fatalf("graft of %v refused", p)
		}
	}
	if got := m.Eager(1); len(got) != 2 || got[0] != peerA || got[1] != peerB {
		t.Fatalf("eager %v, want [A B] (a repeated graft counted once)", got)
	}
	if !m.Prune(peerA, 1) || len(m.Eager(1)) != 1 || !m.Pruned(1, peerA.Addr) || m.Pruned(1, peerB.Addr) {
		t.Fatalf("after A's prune: eager %v, A pruned %v", m.Eager(1), m.Pruned(1, peerA.Addr))
	}
	if !m.Graft(peerA, e) || m.Pruned(1, peerA.Addr) {
		t.Fatal("a graft does not undo the grafter's prune")
	}
	m.Prune(peerB, 1)
	m.Unprune(1, peerB.Addr)
	if m.Pruned(1, peerB.Addr) {
		t.Fatal("Unprune kept the prune")
	}
	m.Prune(peerB, 1)
	m.Reset()
	if len(m.Eager(1)) != 0 || m.Pruned(1, peerA.Addr) || m.Pruned(1, peerB.Addr) {
		t.Fatal("Reset kept grafts or prunes")
	}
}

func TestCaps(t *testing.T) {
	m := New(params)
	for id := uint64(1); id <= uint64(params.MaxOrigins)+3; id++ {
		m.Held(id, 1, 1, peerA.Addr)
		m.IHave(peerA, Entry{Origin: id + 100, Epoch: 1, Seq: 3}, 0, t0)
		m.Prune(peerA, id+200)
	}
	if m.Len() != params.MaxOrigins || m.Refused() == 0 {
		t.Fatalf("%d origins tracked of cap %d, %d refused", m.Len(), params.MaxOrigins, m.Refused())
	}
	e := Entry{Origin: 1, Epoch: 1, Seq: 1}
	peer := func(i int) Peer {
		return Peer{ID: uint64(i), Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 9, 0, byte(i)}), 1)}
	}
	for i := range MaxEager + 2 {
		if ok := m.Graft(peer(i), e); ok != (i < MaxEager) {
			t.Fatalf("graft %d: %v", i, ok)
		}
	}
	for i := range MaxEager + 2 {
		if ok := m.Prune(peer(100+i), 1); ok != (i < MaxEager) {
			t.Fatalf("prune %d: %v", i, ok)
		}
	}
	if m.Graft(peerA, Entry{Origin: 1, Epoch: 0, Seq: 1}) {
		t.Fatal("graft for an earlier epoch accepted")
	}
}

func TestDuplicatePrunesOncePerHold(t *testing.T) {
	m := New(params)
	m.Held(1, 1, 1, peerB.Addr)
	if m.FirstFrom(1) != peerB.Addr {
		t.Fatalf("first copy from %v, want %v", m.FirstFrom(1), peerB.Addr)
	}
	for i, tc := range []struct {
		at   int
		dup  Dup
		want bool
	}{
		{0, DupKeep, false}, // parent and origin: never pruned
		{0, DupSender, true},
		{10, DupSender, false}, // within PruneHold
		{50, DupFirst, true},
		{100, DupFirstLow, false}, // maybe a repair from the parent's ring
		{101, DupFirstLow, false},
		{102, DupFirstLow, false},
		{103, DupFirstLow, true}, // the fourth: a real push
		{200, DupFirstLow, false},
	} {
		if got := m.Duplicate(1, tc.dup, at(tc.at)); got != tc.want {
			t.Fatalf("step %d at %d ms dup %v: prune %v, want %v", i, tc.at, tc.dup, got, tc.want)
		}
	}
	if m.Duplicate(99, DupSender, t0) {
		t.Fatal("prune for an untracked origin")
	}
}

// TestSteadyStateZeroAlloc: holding, announcing, grafting and checking
// the eager set allocate nothing once the origins are tracked.
func TestSteadyStateZeroAlloc(t *testing.T) {
	m := New(params)
	m.Held(1, 1, 1, peerA.Addr)
	m.Held(2, 1, 1, peerA.Addr)
	m.Graft(peerA, Entry{Origin: 1, Epoch: 1, Seq: 1})
	dst := make([]Action, 0, 16)
	now := t0
	seq := uint64(1)
	allocs := testing.AllocsPerRun(1000, func() {
		seq++
		now = now.Add(time.Millisecond)
		m.Held(1, 1, seq, peerA.Addr)
		m.IHave(peerB, Entry{Origin: 2, Epoch: 1, Seq: seq + 5}, seq, now)
		m.Held(2, 1, seq+5, peerB.Addr)
		dst, _ = m.Tick(now, dst[:0])
		_ = m.Duplicate(1, DupSender, now)
		if len(m.Eager(1)) != 1 || m.Pruned(1, peerB.Addr) {
			panic("eager set changed")
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocs per step, want 0", allocs)
	}
}

// TestReannounce: an advanced mark is announced again, unchanged, every
// round for Reannounce after it last advanced, then no more; rounds stay
// allocation-free.
func TestReannounce(t *testing.T) {
	p := params
	p.Reannounce = 35 * time.Millisecond
	m := New(p)
	m.Held(1, 1, 5, peerA.Addr)
	ihave := []Action{{Kind: SendIHave, Entry: Entry{1, 1, 5}}}
	for _, tc := range []struct {
		at   int
		want []Action
		next int // -1: none
	}{
		{0, ihave, 10},
		{10, ihave, 20}, // again, unchanged
		{20, ihave, 30},
		{30, ihave, 40},
		{40, nil, -1}, // 35 ms after it last advanced: quiet
	} {
		got, next := m.Tick(at(tc.at), nil)
		if len(got) != len(tc.want) || (len(got) > 0 && got[0] != tc.want[0]) {
			t.Fatalf("at %d ms: %+v, want %+v", tc.at, got, tc.want)
		}
		if want := at(tc.next); (tc.next < 0 && !next.IsZero()) || (tc.next >= 0 && !next.Equal(want)) {
			t.Fatalf("at %d ms: next %v, want %d ms", tc.at, next.Sub(t0), tc.next)
		}
	}
	m.Held(1, 1, 6, peerA.Addr)
	now := at(100)
	dst := make([]Action, 0, 4)
	allocs := testing.AllocsPerRun(100, func() {
		now = now.Add(10 * time.Millisecond)
		dst, _ = m.Tick(now, dst[:0])
	})
	if allocs != 0 {
		t.Fatalf("re-announcing rounds: %v allocs, want 0", allocs)
	}
}

// TestParentHeld: what the tree parent last said it holds is kept per
// origin and epoch, forgotten with the epoch, and recording it allocates
// nothing once the origin is tracked.
func TestParentHeld(t *testing.T) {
	m := New(params)
	if held, at := m.ParentHeldAt(1); held != 0 || !at.IsZero() {
		t.Fatalf("untracked origin: %d at %v", held, at)
	}
	m.ParentHeld(1, 1, 0, at(1)) // "none yet"
	if held, when := m.ParentHeldAt(1); held != 0 || !when.Equal(at(1)) {
		t.Fatalf("after ParentHeld(0): %d at %v", held, when.Sub(t0))
	}
	m.ParentHeld(1, 1, 7, at(2))
	if held, when := m.ParentHeldAt(1); held != 7 || !when.Equal(at(2)) {
		t.Fatalf("after ParentHeld(7): %d at %v", held, when.Sub(t0))
	}
	m.ParentHeld(1, 0, 9, at(3)) // an earlier epoch: ignored
	if held, _ := m.ParentHeldAt(1); held != 7 {
		t.Fatalf("an earlier epoch's report taken: %d", held)
	}
	m.Held(1, 2, 1, peerA.Addr) // a later epoch forgets the report
	if held, when := m.ParentHeldAt(1); held != 0 || !when.IsZero() {
		t.Fatalf("after a new epoch: %d at %v", held, when)
	}
	now := t0
	allocs := testing.AllocsPerRun(100, func() {
		now = now.Add(time.Millisecond)
		m.ParentHeld(1, 2, 3, now)
		_, _ = m.ParentHeldAt(1)
	})
	if allocs != 0 {
		t.Fatalf("%v allocs, want 0", allocs)
	}
}
