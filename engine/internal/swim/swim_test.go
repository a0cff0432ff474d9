package swim

import (
	"net/netip"
	"testing"
	"time"
)

const period = 100 * time.Millisecond

var cfg = Config{
	Period: period, ProbeTimeout: 40 * time.Millisecond, IndirectProbes: 3,
	SuspicionMult: 4, SuspicionMaxMult: 6, RetransmitMult: 4, AwarenessMax: 8,
	PushPullMin: 30 * period, PushPullPer: period, CatchUp: 3, MaxRelays: 16, QueueCap: 1 << 20,
}

var t0 = time.Unix(1000, 0)

func addr(i int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 7946)
}

// machine returns node 1's machine holding members 2..n+1.
func machine(n int) *Machine {
	m := New(cfg, Update{ID: 1, Epoch: 1, Addr: addr(1)}, 42)
	for i := 2; i <= n+1; i++ {
		m.Add(Update{ID: uint64(i), Epoch: 1, Addr: addr(i)}, t0)
	}
	return m
}

func kinds(as []Action, k Kind) []Action {
	var out []Action
	for _, a := range as {
		if a.Kind == k {
			out = append(out, a)
		}
	}
	return out
}

func TestProbeRoundRobinCoversEveryMember(t *testing.T) {
	const n = 50
	m := machine(n)
	now := t0
	seen := map[uint64]int{}
	for round := 0; round < 3; round++ {
		for i := 0; i < n; i++ {
			as := m.Tick(now, nil)
			pings := kinds(as, Ping)
			if len(pings) != 1 {
				t.Fatalf("round %d probe %d: %d pings", round, i, len(pings))
			}
			seen[pings[0].ID]++
			m.HandleAck(pings[0].Seq, nil)
			now = m.Next()
			if d := now.Sub(t0); d <= 0 {
				t.Fatalf("next deadline %v not ahead", d)
			}
		}
	}
	for id := uint64(2); id <= n+1; id++ {
		if seen[id] != 3 {
			t.Fatalf("member %d probed %d times in 3 rounds, want 3", id, seen[id])
		}
	}
	if m.Awareness() != 0 {
		t.Fatalf("awareness %d after all acks", m.Awareness())
	}
}

func TestProbeFailureIndirectThenSuspectThenDead(t *testing.T) {
	m := machine(10)
	for m.Queued() > 0 {
		m.Take(nil, 100)
	}
	as := m.Tick(t0, nil)
	ping := kinds(as, Ping)[0]
	// No ack: at the probe timeout, k indirect probes through others.
	as = m.Tick(m.Next(), nil)
	reqs := kinds(as, PingReq)
	if len(reqs) != cfg.IndirectProbes {
		t.Fatalf("%d ping-reqs, want %d", len(reqs), cfg.IndirectProbes)
	}
	for _, r := range reqs {
		if r.Target != ping.ID || r.ID == ping.ID || r.Seq != ping.Seq {
			t.Fatalf("bad ping-req %+v for probe %+v", r, ping)
		}
	}
	m.HandleNack(ping.Seq) // one relay answered: only two missing nacks
	at := m.Next()
	as = m.Tick(at, nil)
	ch := kinds(as, Changed)
	if len(ch) != 1 || ch[0].ID != ping.ID || ch[0].State != Suspect {
		t.Fatalf("after the period: %+v, want %d suspect", as, ping.ID)
	}
	if m.Awareness() != 1+2 {
		t.Fatalf("awareness %d, want 3 (failed probe + 2 missed nacks)", m.Awareness())
	}
	ups := m.Take(nil, 10)
	if len(ups) != 1 || ups[0].State != Suspect || ups[0].From != 1 {
		t.Fatalf("queued %+v, want the suspicion", ups)
	}
	// Nobody confirms: dead after the longest suspicion timeout.
	longest := m.suspicionTimeout(0)
	deadAt := at.Add(longest)
	var dead bool
	for now := at; !now.After(deadAt); {
		as := m.Tick(now, nil)
		for _, a := range kinds(as, Ping) {
			m.HandleAck(a.Seq, nil)
		}
		for _, a := range kinds(as, Changed) {
			if a.ID == ping.ID && a.State == Dead {
				if now.Before(deadAt) {
					t.Fatalf("dead at %v, before %v", now.Sub(at), longest)
				}
				dead = true
			}
		}
		now = m.Next()
	}
	if !dead {
		t.Fatalf("not dead after %v", longest)
	}
}

func TestSuspicionTimeoutShrinksWithConfirmations(t *testing.T) {
	m := machine(100)
	prev := m.suspicionTimeout(0)
	lo := time.Duration(float64(cfg.SuspicionMult) * 2.0043213737826426 * float64(period))
	if prev < 5*lo || prev > 7*lo {
		t.Fatalf("longest %v, want about 6 × %v", prev, lo)
	}
	for c := 1; c <= cfg.IndirectProbes; c++ {
		d := m.suspicionTimeout(c)
		if d >= prev {
			t.Fatalf("%d confirmations: %v, not below %v", c, d, prev)
		}
		prev = d
	}
	if prev > lo+time.Millisecond {
		t.Fatalf("at k confirmations %v, want the shortest %v", prev, lo)
	}
	// Independent confirmations count once each, and not the accuser's.
	u := Update{ID: 5, Epoch: 1, State: Suspect, From: 9}
	if o, as := m.Apply(u, t0, nil); o != Applied || len(kinds(as, Changed)) != 1 {
		t.Fatalf("first suspicion: %v %+v", o, as)
	}
	for _, c := range []struct {
		from uint64
		want Outcome
	}{{9, Stale}, {10, Applied}, {10, Stale}, {11, Applied}, {5, Stale}} {
		u.From = c.from
		if o, _ := m.Apply(u, t0, nil); o != c.want {
			t.Fatalf("confirmation from %d: %v, want %v", c.from, o, c.want)
		}
	}
	if e := m.members[m.at[5]]; e.nconf != 2 {
		t.Fatalf("%d confirmations, want 2", e.nconf)
	}
}

func TestApplyRules(t *testing.T) {
	type step struct {
		u    Update
		want Outcome
		st   State // member 2's state after
	}
	a := addr(2)
	cases := []struct {
		name  string
		steps []step
	}{
		{"suspect then refuted", []step{
			{Update{ID: 2, Epoch: 1, Incarnation: 0, Addr: a, State: Suspect, From: 3}, Applied, Suspect},
			{Update{ID: 2, Epoch: 1, Incarnation: 0, Addr: a, State: Alive}, Stale, Suspect},
			{Update{ID: 2, Epoch: 1, Incarnation: 1, Addr: a, State: Alive}, Applied, Alive},
			{Update{ID: 2, Epoch: 1, Incarnation: 0, Addr: a, State: Suspect, From: 3}, Stale, Alive},
		}},
		{"dead is final for the epoch", []step{
			{Update{ID: 2, Epoch: 1, Incarnation: 0, Addr: a, State: Dead, From: 3}, Applied, Dead},
			{Update{ID: 2, Epoch: 1, Incarnation: 5, Addr: a, State: Alive}, Validate, Dead},
			{Update{ID: 2, Epoch: 1, Incarnation: 5, Addr: a, State: Suspect}, Stale, Dead},
		}},
		{"new epoch or address must be validated", []step{
			{Update{ID: 2, Epoch: 2, Addr: a, State: Alive}, Validate, Alive},
			{Update{ID: 2, Epoch: 1, Incarnation: 1, Addr: addr(99), State: Alive}, Validate, Alive},
			{Update{ID: 2, Epoch: 0, Incarnation: 9, Addr: a, State: Dead}, Stale, Alive},
		}},
		{"left", []step{
			{Update{ID: 2, Epoch: 1, Addr: a, State: Left}, Applied, Left},
			{Update{ID: 2, Epoch: 1, Addr: a, State: Dead}, Stale, Left},
		}},
		{"unknown", []step{
			{Update{ID: 77, Epoch: 1, Addr: addr(77), State: Alive}, Unknown, Alive},
			{Update{ID: 78, Epoch: 1, Addr: addr(78), State: Dead}, Stale, Alive},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := machine(5)
			for i, s := range c.steps {
				o, _ := m.Apply(s.u, t0, nil)
				if o != s.want {
					t.Fatalf("step %d: %v, want %v", i, o, s.want)
				}
				if u, _ := m.Get(2); u.State != s.st {
					t.Fatalf("step %d: member 2 %v, want %v", i, u.State, s.st)
				}
			}
		})
	}
}

func TestRefuteOwnSuspicion(t *testing.T) {
	m := machine(3)
	for m.Queued() > 0 {
		m.Take(nil, 100)
	}
	o, as := m.Apply(Update{ID: 1, Epoch: 1, Incarnation: 0, State: Suspect, From: 2}, t0, nil)
	if o != Applied || len(as) != 1 || as[0].Kind != Refuted || as[0].Incarnation != 1 {
		t.Fatalf("%v %+v", o, as)
	}
	ups := m.Take(nil, 10)
	if len(ups) != 1 || ups[0].ID != 1 || ups[0].State != Alive || ups[0].Incarnation != 1 {
		t.Fatalf("queued %+v, want our alive at incarnation 1", ups)
	}
	m.Take(nil, 100)
	if o, _ := m.Apply(Update{ID: 1, Epoch: 1, Incarnation: 0, State: Dead}, t0, nil); o != Stale {
		t.Fatalf("an older accusation: %v", o)
	}
	// ... is answered by our current incarnation again, not a new one.
	if ups := m.Take(nil, 10); len(ups) != 1 || ups[0].ID != 1 || ups[0].Incarnation != 1 || ups[0].State != Alive {
		t.Fatalf("after a stale accusation queued %+v, want our alive at incarnation 1", ups)
	}
	if m.Awareness() != 1 {
		t.Fatalf("awareness %d, want 1", m.Awareness())
	}
}

func TestQueueRetransmitLimitAndOrder(t *testing.T) {
	m := machine(30) // 30 updates queued by the adds
	limit := m.retransmits()
	if limit != cfg.RetransmitMult*2 {
		t.Fatalf("limit %d, want %d", limit, cfg.RetransmitMult*2)
	}
	sent := map[uint64]int{}
	frames := 0
	for m.Queued() > 0 {
		ups := m.Take(nil, 7)
		frames++
		for _, u := range ups {
			sent[u.ID]++
		}
		// Least-sent first: no update is two sends ahead of another.
		lo, hi := 1<<30, 0
		for id := uint64(2); id <= 31; id++ {
			lo, hi = min(lo, sent[id]), max(hi, sent[id])
		}
		if hi-lo > 1 {
			t.Fatalf("frame %d: sends spread %d..%d", frames, lo, hi)
		}
	}
	for id := uint64(2); id <= 31; id++ {
		if sent[id] != limit {
			t.Fatalf("member %d sent %d times, want %d", id, sent[id], limit)
		}
	}
	// A newer update replaces the queued one and starts over.
	m.Apply(Update{ID: 2, Epoch: 1, Incarnation: 0, State: Suspect, From: 3}, t0, nil)
	m.Apply(Update{ID: 2, Epoch: 1, Incarnation: 1, Addr: addr(2), State: Alive}, t0, nil)
	if m.Queued() != 1 {
		t.Fatalf("%d queued, want 1 (one per member)", m.Queued())
	}
}

func TestRemoveKeepsOrderConsistent(t *testing.T) {
	m := machine(20)
	for _, id := range []uint64{5, 21, 2, 13} {
		m.Remove(id)
	}
	if m.Len() != 16 || len(m.order) != 16 {
		t.Fatalf("len %d order %d", m.Len(), len(m.order))
	}
	for o, i := range m.order {
		if m.members[i].ord != int32(o) {
			t.Fatalf("order %d -> member %d has ord %d", o, i, m.members[i].ord)
		}
	}
	for id, i := range m.at {
		if m.members[i].ID != id {
			t.Fatalf("index of %d points at %d", id, m.members[i].ID)
		}
	}
	now := t0
	for i := 0; i < 40; i++ {
		for _, a := range kinds(m.Tick(now, nil), Ping) {
			for _, gone := range []uint64{5, 21, 2, 13} {
				if a.ID == gone {
					t.Fatalf("probed removed member %d", gone)
				}
			}
			m.HandleAck(a.Seq, nil)
		}
		now = m.Next()
	}
}

func TestRelayAckAndNack(t *testing.T) {
	m := machine(5)
	as, ok := m.HandlePingReq(3, addr(3), 77, 4, t0, nil)
	if !ok || len(as) != 1 || as[0].Kind != Ping || as[0].ID != 4 {
		t.Fatalf("%v %+v", ok, as)
	}
	as = m.HandleAck(as[0].Seq, nil)
	if len(as) != 1 || as[0].Kind != Ack || as[0].ID != 3 || as[0].Seq != 77 || as[0].Target != 4 {
		t.Fatalf("relayed ack %+v", as)
	}
	if _, ok := m.HandlePingReq(3, addr(3), 78, 4, t0, nil); !ok {
		t.Fatal("second relay refused")
	}
	var nack []Action
	for now := t0; len(nack) == 0 && now.Before(t0.Add(time.Second)); now = now.Add(5 * time.Millisecond) {
		nack = kinds(m.Tick(now, nil), Nack)
	}
	if len(nack) != 1 || nack[0].Seq != 78 || nack[0].ID != 3 {
		t.Fatalf("nack %+v", nack)
	}
	if _, ok := m.HandlePingReq(3, addr(3), 79, 999, t0, nil); ok {
		t.Fatal("relayed a probe to a non-member")
	}
}

func TestPushPullSchedule(t *testing.T) {
	m := machine(100)
	as := kinds(m.Tick(t0, nil), PushPull)
	if len(as) != 1 {
		t.Fatalf("no push-pull at start: %+v", as)
	}
	// Not synced: again after two periods.
	as = kinds(m.Tick(t0.Add(2*period), nil), PushPull)
	if len(as) != 1 {
		t.Fatal("no retry of an unanswered push-pull")
	}
	m.Synced()
	m.Tick(t0.Add(4*period), nil) // past catch-up (3 periods): the steady interval from here
	steady := max(cfg.PushPullMin, 100*cfg.PushPullPer)
	for now := t0.Add(5 * period); now.Before(t0.Add(4*period + steady)); now = now.Add(period) {
		if as := kinds(m.Tick(now, nil), PushPull); len(as) != 0 {
			t.Fatalf("push-pull at %v, before the steady interval %v", now.Sub(t0), steady)
		}
	}
}

func TestSteadyStateDoesNotAllocate(t *testing.T) {
	m := machine(1000)
	for m.Queued() > 0 {
		m.Take(nil, 100)
	}
	dst := make([]Action, 0, 64)
	ups := make([]Update, 0, 32)
	now := t0
	// Warm up: one full round, reshuffle included.
	for i := 0; i < 1100; i++ {
		for _, a := range m.Tick(now, dst[:0]) {
			if a.Kind == Ping {
				m.HandleAck(a.Seq, nil)
			}
		}
		now = now.Add(period)
	}
	m.Synced()
	var pushed Update
	allocs := testing.AllocsPerRun(1000, func() {
		as := m.Tick(now, dst[:0])
		for _, a := range as {
			if a.Kind == Ping {
				dst = m.HandleAck(a.Seq, dst[:0])
			}
		}
		_, dst = m.Apply(Update{ID: 500, Epoch: 1, Incarnation: pushed.Incarnation + 1, Addr: addr(500), State: Alive}, now, dst[:0])
		pushed.Incarnation++
		ups = m.Take(ups[:0], 16)
		now = now.Add(period)
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per period in steady state", allocs)
	}
}

func TestQueueCapLeavesJoinsToPushPull(t *testing.T) {
	c := cfg
	c.QueueCap = 4
	m := New(c, Update{ID: 1, Epoch: 1, Addr: addr(1)}, 7)
	for i := 2; i <= 11; i++ {
		m.Add(Update{ID: uint64(i), Epoch: 1, Addr: addr(i)}, t0)
	}
	if m.Queued() != 4 || m.Dropped() != 6 {
		t.Fatalf("queued %d dropped %d, want 4 and 6", m.Queued(), m.Dropped())
	}
	// Suspicions and refutations are queued whatever the queue holds.
	m.Apply(Update{ID: 9, Epoch: 1, State: Suspect, From: 3}, t0, nil)
	if m.Queued() != 5 {
		t.Fatalf("suspicion not queued: %d", m.Queued())
	}
	m.Apply(Update{ID: 10, Epoch: 1, State: Suspect, From: 3}, t0, nil)
	m.Apply(Update{ID: 10, Epoch: 1, Incarnation: 1, Addr: addr(10), State: Alive}, t0, nil)
	if m.Queued() != 6 {
		t.Fatalf("refutation not queued: %d", m.Queued())
	}
	o, _ := m.Apply(Update{ID: 1, Epoch: 1, State: Suspect, From: 3}, t0, nil)
	if o != Applied || m.Queued() != 7 {
		t.Fatalf("own refutation: %v, %d queued", o, m.Queued())
	}
	// A refutation reaching a node that never held the suspicion (the
	// member alive here at a lower incarnation) spreads too: else the
	// suspicion, always queued, outruns it through full queues.
	o, _ = m.Apply(Update{ID: 11, Epoch: 1, Incarnation: 1, Addr: addr(11), State: Alive}, t0, nil)
	if o != Applied || m.Queued() != 8 {
		t.Fatalf("a higher incarnation of a member alive here: %v, %d queued, want applied and 8", o, m.Queued())
	}
}

func TestOwnFailedProbeConfirmsSuspicion(t *testing.T) {
	m := machine(10)
	for m.Queued() > 0 {
		m.Take(nil, 100)
	}
	now := t0
	ping := kinds(m.Tick(now, nil), Ping)[0]
	// Someone else suspects the target while our probe is in flight.
	m.Apply(Update{ID: ping.ID, Epoch: 1, State: Suspect, From: 5}, now, nil)
	m.Take(nil, 100)
	for range 3 {
		now = m.Next()
		m.Tick(now, nil)
	}
	ups := m.Take(nil, 10)
	if len(ups) != 1 || ups[0].ID != ping.ID || ups[0].State != Suspect || ups[0].From != 1 {
		t.Fatalf("queued %+v, want our confirmation of %d", ups, ping.ID)
	}
	if e := m.members[m.at[ping.ID]]; e.nconf != 1 {
		t.Fatalf("%d confirmations, want 1", e.nconf)
	}
}

// A node that keeps learning of members from push-pulls keeps push-
// pulling at the catch-up interval; once an interval passes without news,
// it slows to the steady one. News does not pull in a push-pull already
// scheduled.
func TestPushPullCatchesUpWhileLearning(t *testing.T) {
	m := machine(100)
	m.Synced()
	pushPulls := func(from, to time.Time) (at []time.Duration) {
		for now := from; now.Before(to); now = now.Add(period) {
			if len(kinds(m.Tick(now, nil), PushPull)) > 0 {
				at = append(at, now.Sub(t0))
			}
		}
		return at
	}
	// Adds at t0 are news: push-pulls every catchUpEvery periods while
	// each one (here: Learned before it) brings more.
	var got []time.Duration
	for i := 0; i < 4; i++ {
		got = append(got, pushPulls(t0.Add(time.Duration(i*catchUpEvery)*period), t0.Add(time.Duration((i+1)*catchUpEvery)*period))...)
		m.Learned()
	}
	if len(got) != 4 {
		t.Fatalf("push-pulls at %v, want one every %d periods while learning", got, catchUpEvery)
	}
	// The push-pull for the last news, then catchUpQuiet more that find
	// nothing new, then none for the steady interval.
	from := t0.Add(4 * catchUpEvery * period)
	window := time.Duration(catchUpQuiet*catchUpEvery)*period + period
	if at := pushPulls(from, from.Add(window)); len(at) != 1+catchUpQuiet {
		t.Fatalf("push-pulls %v after the last news, want %d", at, 1+catchUpQuiet)
	}
	// One more after PushPullMin, for stragglers, then the steady
	// interval.
	steady := max(cfg.PushPullMin, 100*cfg.PushPullPer)
	last := from.Add(window - period) // the last catch-up push-pull
	from = from.Add(window)
	if at := pushPulls(from, last.Add(cfg.PushPullMin+period)); len(at) != 1 || at[0] != last.Add(cfg.PushPullMin).Sub(t0) {
		t.Fatalf("push-pulls at %v after the catch-up, want one at %v", at, last.Add(cfg.PushPullMin).Sub(t0))
	}
	from = last.Add(cfg.PushPullMin + period)
	if at := pushPulls(from, from.Add(steady-2*period)); len(at) != 0 {
		t.Fatalf("push-pulls at %v with nothing learned, want the steady interval %v", at, steady)
	}
	// News now does not pull the scheduled push-pull in.
	m.Learned()
	if at := pushPulls(from.Add(steady-2*period), from.Add(steady-period)); len(at) != 0 {
		t.Fatalf("news pulled a push-pull in: %v", at)
	}
}

// A probe that fails makes the target suspect and pings it at once
// (Lifeguard's buddy system: the driver puts the suspicion in that ping).
func TestFailedProbePingsTheSuspect(t *testing.T) {
	m := machine(5)
	ping := kinds(m.Tick(t0, nil), Ping)[0]
	var as []Action
	for now := t0; now.Before(t0.Add(2 * period)); now = now.Add(5 * time.Millisecond) {
		as = m.Tick(now, nil)
		if len(kinds(as, Changed)) > 0 {
			break
		}
	}
	ch := kinds(as, Changed)
	if len(ch) != 1 || ch[0].ID != ping.ID || ch[0].State != Suspect {
		t.Fatalf("actions after a failed probe %+v", as)
	}
	buddy := false
	for _, p := range kinds(as, Ping) {
		buddy = buddy || (p.ID == ping.ID && p.Seq != ping.Seq)
	}
	if !buddy {
		t.Fatalf("no ping to the new suspect %d: %+v", ping.ID, as)
	}
	if u, ok := m.Get(ping.ID); !ok || u.State != Suspect {
		t.Fatalf("target %+v", u)
	}
}

// A suspicion heard from gossip makes the suspect the next member probed
// once urgentDelay periods passed (ahead of the round-robin), and again
// after an ack that did not refute.
func TestGossipedSuspectIsProbedNext(t *testing.T) {
	m := machine(50)
	now := t0
	// A first probe, acked, so the machine is between probes.
	p := kinds(m.Tick(now, nil), Ping)[0]
	m.HandleAck(p.Seq, nil)
	target := uint64(37)
	if target == p.ID {
		target = 38
	}
	u, _ := m.Get(target)
	u.State, u.From = Suspect, 9
	if o, _ := m.Apply(u, now, nil); o != Applied {
		t.Fatalf("suspicion %v", o)
	}
	// Not at once: gossip refutes most suspicions sooner.
	now = m.Next()
	if pings := kinds(m.Tick(now, nil), Ping); len(pings) != 1 || pings[0].ID == target {
		t.Fatalf("probed %+v at once, want the round-robin", pings)
	} else {
		m.HandleAck(pings[0].Seq, nil)
	}
	now = now.Add(urgentDelay * period)
	for round := 0; round < 2; round++ {
		if n := m.Next(); n.After(now) {
			now = n
		}
		pings := kinds(m.Tick(now, nil), Ping)
		if len(pings) != 1 || pings[0].ID != target {
			t.Fatalf("round %d: probed %+v, want the suspect %d", round, pings, target)
		}
		m.HandleAck(pings[0].Seq, nil) // an ack without a refutation: still suspect
	}
}

// TestDeepQueueGossips: while more than a frame of updates is queued, a
// period's probe comes with extra pings to random members (sequence 0,
// answering no probe), one per queued frame up to GossipMax; with a short
// queue, none; an ack to one changes no probe.
func TestDeepQueueGossips(t *testing.T) {
	c := cfg
	c.GossipMax, c.UpdatesPerFrame = 3, 10
	m := New(c, Update{ID: 1, Epoch: 1, Addr: addr(1)}, 42)
	for i := 2; i <= 101; i++ {
		m.Add(Update{ID: uint64(i), Epoch: 1, Addr: addr(i)}, t0)
	}
	// 100 joins queued: ten frames' worth, so the cap of 3 applies.
	acts := m.Tick(t0, nil)
	pings := kinds(acts, Ping)
	if len(pings) != 4 {
		t.Fatalf("%d pings with 100 updates queued, want the probe and 3 extra: %+v", len(pings), pings)
	}
	probe := pings[0]
	seen := map[uint64]bool{probe.ID: true}
	for _, p := range pings[1:] {
		if p.Seq != 0 || seen[p.ID] {
			t.Fatalf("extra ping %+v: want sequence 0 and a member not pinged yet this period", p)
		}
		seen[p.ID] = true
	}
	if m.Gossiped() != 3 {
		t.Fatalf("Gossiped %d, want 3", m.Gossiped())
	}
	if out := m.HandleAck(0, nil); len(out) != 0 || !m.probe.active {
		t.Fatalf("an ack to an extra ping answered the probe: %+v, probe active %v", out, m.probe.active)
	}
	// Drain to less than a frame: the next period sends the probe alone.
	for m.Queued() >= c.UpdatesPerFrame {
		m.Take(nil, 100)
	}
	m.HandleAck(probe.Seq, nil)
	if pings := kinds(m.Tick(t0.Add(period), nil), Ping); len(pings) != 1 {
		t.Fatalf("%d pings with %d updates queued, want the probe alone", len(pings), m.Queued())
	}
	// A node in poor local health (its probes unanswered) gossips less:
	// at awareness 2, a third.
	m2 := New(c, Update{ID: 1, Epoch: 1, Addr: addr(1)}, 42)
	for i := 2; i <= 101; i++ {
		m2.Add(Update{ID: uint64(i), Epoch: 1, Addr: addr(i)}, t0)
	}
	m2.awareness = 2
	if pings := kinds(m2.Tick(t0, nil), Ping); len(pings) != 2 {
		t.Fatalf("awareness 2: %d pings, want the probe and 3/3 = 1 extra", len(pings))
	}
	// Disabled: never.
	c.GossipMax = 0
	m = New(c, Update{ID: 1, Epoch: 1, Addr: addr(1)}, 42)
	for i := 2; i <= 101; i++ {
		m.Add(Update{ID: uint64(i), Epoch: 1, Addr: addr(i)}, t0)
	}
	if pings := kinds(m.Tick(t0, nil), Ping); len(pings) != 1 {
		t.Fatalf("GossipMax 0: %d pings", len(pings))
	}
}

// TestPushPullMaxCapsSteadyInterval: the steady push-pull interval grows
// with the table (PushPullPer per member) up to PushPullMax, and never
// below PushPullMin.
func TestPushPullMaxCapsSteadyInterval(t *testing.T) {
	c := cfg
	c.PushPullMax = 60 * period
	m := New(c, Update{ID: 1, Epoch: 1, Addr: addr(1)}, 42)
	for i := 2; i <= 1001; i++ {
		m.Add(Update{ID: uint64(i), Epoch: 1, Addr: addr(i)}, t0)
	}
	if got := m.pushPullInterval(); got != 60*period {
		t.Fatalf("1000 members, PushPullPer %v, cap %v: interval %v", c.PushPullPer, c.PushPullMax, got)
	}
	small := New(c, Update{ID: 1, Epoch: 1, Addr: addr(1)}, 42)
	for i := 2; i <= 11; i++ {
		small.Add(Update{ID: uint64(i), Epoch: 1, Addr: addr(i)}, t0)
	}
	if got := small.pushPullInterval(); got != c.PushPullMin {
		t.Fatalf("10 members: interval %v, want PushPullMin %v", got, c.PushPullMin)
	}
	c.PushPullMax = 0
	uncapped := New(c, Update{ID: 1, Epoch: 1, Addr: addr(1)}, 42)
	for i := 2; i <= 1001; i++ {
		uncapped.Add(Update{ID: uint64(i), Epoch: 1, Addr: addr(i)}, t0)
	}
	if got := uncapped.pushPullInterval(); got != 1000*c.PushPullPer {
		t.Fatalf("no cap: interval %v, want %v", got, 1000*c.PushPullPer)
	}
}

// TestAnnouncePastQueueCap: news that a member took another's address is
// queued whatever the queue holds; a member not held, or not alive, is
// not announced.
func TestAnnouncePastQueueCap(t *testing.T) {
	c := cfg
	c.QueueCap = 2
	m := New(c, Update{ID: 1, Epoch: 1, Addr: addr(1)}, 7)
	for i := 2; i <= 6; i++ {
		m.Add(Update{ID: uint64(i), Epoch: 1, Addr: addr(i)}, t0)
	}
	if m.Queued() != 2 {
		t.Fatalf("queued %d, want the cap, 2", m.Queued())
	}
	m.Announce(6)
	if m.Queued() != 3 {
		t.Fatalf("announced member not queued past the cap: %d queued", m.Queued())
	}
	ups := m.Take(nil, 10)
	found := false
	for _, u := range ups {
		found = found || (u.ID == 6 && u.State == Alive)
	}
	if !found {
		t.Fatalf("the announcement is not in the next frame: %v", ups)
	}
	m.Announce(77) // not held
	m.Apply(Update{ID: 5, Epoch: 1, State: Dead}, t0, nil)
	q := m.Queued()
	m.Announce(5) // dead here
	if m.Queued() != q {
		t.Fatalf("announcing a dead member queued news: %d, want %d", m.Queued(), q)
	}
}

// TestLeftWhateverIncarnation: a leave is final for its epoch, so it is
// taken at a lower incarnation than the one held (a refutation the
// retiring node never heard of); a leave of another epoch is not.
func TestLeftWhateverIncarnation(t *testing.T) {
	m := machine(3)
	if o, _ := m.Apply(Update{ID: 2, Epoch: 1, Incarnation: 5, Addr: addr(2), State: Alive}, t0, nil); o != Applied {
		t.Fatalf("refutation at incarnation 5: %v", o)
	}
	if o, _ := m.Apply(Update{ID: 2, Epoch: 0, Incarnation: 9, Addr: addr(2), State: Left}, t0, nil); o != Stale {
		t.Fatalf("leave of an earlier epoch: %v, want stale", o)
	}
	o, acts := m.Apply(Update{ID: 2, Epoch: 1, Incarnation: 2, Addr: addr(2), State: Left}, t0, nil)
	if o != Applied || len(kinds(acts, Changed)) != 1 {
		t.Fatalf("leave at a lower incarnation: %v %v, want applied and changed", o, acts)
	}
	if u, _ := m.Get(2); u.State != Left || u.Incarnation != 5 {
		t.Fatalf("member 2 after the leave: %v at %d, want left at 5", u.State, u.Incarnation)
	}
	if o, _ := m.Apply(Update{ID: 2, Epoch: 1, Incarnation: 9, Addr: addr(2), State: Left}, t0, nil); o != Stale {
		t.Fatalf("a second leave: %v, want stale", o)
	}
	// A death still needs the incarnation held.
	m.Apply(Update{ID: 3, Epoch: 1, Incarnation: 4, Addr: addr(3), State: Alive}, t0, nil)
	if o, _ := m.Apply(Update{ID: 3, Epoch: 1, Incarnation: 3, Addr: addr(3), State: Dead}, t0, nil); o != Stale {
		t.Fatalf("death at a lower incarnation: %v, want stale", o)
	}
}

// TestOwnLeaveRefuted: a running node told it left (at any incarnation)
// raises its incarnation past the news and queues itself alive, so the
// members that retired it challenge it again; a leave of another epoch
// is stale.
func TestOwnLeaveRefuted(t *testing.T) {
	m := machine(3)
	m.SetIncarnation(4)
	if o, _ := m.Apply(Update{ID: 1, Epoch: 0, Incarnation: 9, Addr: addr(1), State: Left}, t0, nil); o != Stale {
		t.Fatalf("leave of an earlier epoch: %v, want stale", o)
	}
	for _, c := range []struct{ inc, want uint64 }{{2, 5}, {7, 8}} {
		inc, want := c.inc, c.want
		o, acts := m.Apply(Update{ID: 1, Epoch: 1, Incarnation: inc, Addr: addr(1), State: Left}, t0, nil)
		ref := kinds(acts, Refuted)
		if o != Applied || len(ref) != 1 || m.Incarnation() <= inc {
			t.Fatalf("own leave at %d: %v %v, incarnation %d; want refuted above %d", inc, o, acts, m.Incarnation(), inc)
		}
		if ref[0].Incarnation != want {
			t.Fatalf("own leave at %d: refuted at %d, want %d", inc, ref[0].Incarnation, want)
		}
	}
	ups := m.Take(nil, 64)
	found := false
	for _, u := range ups {
		found = found || (u.ID == 1 && u.State == Alive && u.Incarnation == m.Incarnation())
	}
	if !found {
		t.Fatalf("refutation not queued: %v", ups)
	}
}
