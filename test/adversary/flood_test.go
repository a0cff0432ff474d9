package adversary

import (
	"net/netip"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warpmesh/warpmesh/codec"
	"github.com/warpmesh/warpmesh/engine"
)

// flood sends forged identities to the target until stopped: ALIVEs, each
// from a new id advertising a phantom address, each naming a digest of new
// ids at phantom addresses. After total identities it repeats them.
type flood struct {
	a      *attacker
	to     netip.AddrPort
	total  int
	rate   int // identities per second
	sentID atomic.Int64
	stop   chan struct{}
	done   chan struct{}
}

func startFlood(t *testing.T, a *attacker, to netip.AddrPort, total, rate int) *flood {
	f := &flood{a: a, to: to, total: total, rate: rate, stop: make(chan struct{}), done: make(chan struct{})}
	go f.run()
	t.Cleanup(f.halt)
	return f
}

func (f *flood) halt() {
	select {
	case <-f.stop:
	default:
		close(f.stop)
	}
	<-f.done
}

func (f *flood) run() {
	defer close(f.done)
	room := codec.MaxDigestEntries(codec.DefaultMaxFrameSize, false)
	ids := make([]uint64, f.total)
	for i := range ids {
		ids[i] = randID()
	}
	phantom := func(i int) netip.AddrPort {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, byte(4 + i>>16), 4}), uint16(1+i%65535))
	}
	start := time.Now()
	sent := 0
	digest := make([]codec.DigestEntry, 0, room)
	for i := 0; ; {
		select {
		case <-f.stop:
			return
		default:
		}
		// Pace: identities per second.
		if ahead := time.Duration(float64(sent)/float64(f.rate)*float64(time.Second)) - time.Since(start); ahead > 0 {
			time.Sleep(ahead)
		}
		// A direct ALIVE from a forged id, then a digest of forged ids
		// from the attacker's own (validated) id.
		f.a.send(f.to, f.a.alive(f.a.header(codec.TypeAlive, ids[i%f.total], 1), phantom(i%f.total), nil))
		digest = digest[:0]
		for k := 1; k <= room; k++ {
			j := (i + k) % f.total
			digest = append(digest, codec.DigestEntry{ID: ids[j], Epoch: 1, Incarnation: 1, Addr: phantom(j), State: codec.StateAlive})
		}
		f.a.send(f.to, f.a.alive(f.a.header(codec.TypeAlive, 0, 0), netip.AddrPort{}, digest))
		i += room + 1
		sent += room + 1
		f.sentID.Store(int64(min(sent, f.total)))
	}
}

// latency publishes keys from pub and returns the median time until tg
// applied them.
func latency(t *testing.T, pub, tg *target, prefix string, samples int) time.Duration {
	t.Helper()
	var ds []time.Duration
	for i := range samples {
		key := prefix + itoa(i)
		start := time.Now()
		if err := pub.Invalidate(key); err != nil {
			t.Fatal(err)
		}
		if !eventually(30*time.Second, func() bool { _, ok := tg.appliedAt(key); return ok }) {
			t.Errorf("invalidation %s not applied within 30s", key)
			return 30 * time.Second
		}
		at, _ := tg.appliedAt(key)
		ds = append(ds, at.Sub(start))
	}
	slices.Sort(ds)
	return ds[len(ds)/2]
}

// joinAndApply starts a newcomer seeded with tg and returns how long it
// took to become tg's member and to have an invalidation applied by tg.
func joinAndApply(t *testing.T, tg *target, key string) (join, apply time.Duration) {
	t.Helper()
	return joinAndApplyWith(t, tg, key, nil)
}

// joinAndApplyWith is joinAndApply with the newcomer's options edited.
func joinAndApplyWith(t *testing.T, tg *target, key string, edit func(*engine.Options)) (join, apply time.Duration) {
	t.Helper()
	start := time.Now()
	nc := startNode(t, []string{tg.Addr().String()}, edit)
	if !eventually(30*time.Second, func() bool { return tg.member(nc.ID()) && nc.member(tg.ID()) }) {
		t.Errorf("newcomer did not join within 30s")
		return 30 * time.Second, 30 * time.Second
	}
	join = time.Since(start)
	pub := time.Now()
	if err := nc.Invalidate(key); err != nil {
		t.Fatal(err)
	}
	if !eventually(30*time.Second, func() bool { _, ok := tg.appliedAt(key); return ok }) {
		t.Errorf("newcomer's invalidation not applied within 30s")
		return join, 30 * time.Second
	}
	at, _ := tg.appliedAt(key)
	return join, at.Sub(pub)
}

// TestMemberFlood: forged identities (direct and in digests) at a rate,
// while a member publishes and a newcomer joins.
func TestMemberFlood(t *testing.T) {
	tg := startNode(t, nil, nil)
	legit := startNode(t, []string{tg.Addr().String()}, nil)
	waitFor(t, 10*time.Second, "legitimate member to join", func() bool { return tg.member(legit.ID()) && legit.member(tg.ID()) })
	samples := pick(9, 31)
	quiet := latency(t, legit, tg, "quiet:", samples)
	heap0, rss0 := heapMB(), rssMB()

	identities, rate := pick(100000, 200000), pick(50000, 20000)
	if raceEnabled {
		identities, rate = 100000, 10000
	}
	a := newAttacker(t)
	if !a.validate(tg) {
		t.Log("attacker not validated: its digests come from a stranger")
	}
	f := startFlood(t, a, tg.Addr(), identities, rate)
	waitFor(t, 60*time.Second, "flood to name every identity", func() bool { return f.sentID.Load() >= int64(identities) })
	during := latency(t, legit, tg, "flood:", samples)
	join, apply := joinAndApply(t, tg, "newcomer:1")
	s := tg.Stats()
	size := tableSize(s)
	heap1, rss1 := heapMB(), rssMB()
	f.halt()
	t.Logf("figure: member flood: %d identities at %d/s (%d B sent): table %d entries (alive %d suspect %d dead %d left %d unvalidated %d); heap %.1f → %.1f MiB, RSS %.1f → %.1f MiB",
		identities, rate, a.sent.Load(), size, s.MembersAlive, s.MembersSuspect, s.MembersDead, s.MembersLeft, unvalidated(s), heap0, heap1, rss0, rss1)
	t.Logf("figure: member flood: invalidation latency p50 quiet %v, during flood %v (%.1fx); newcomer joined in %v, its invalidation applied in %v",
		quiet, during, float64(during)/float64(max(quiet, time.Microsecond)), join, apply)
	if size > memberCap {
		t.Errorf("member table at %d entries, cap %d", size, memberCap)
	}
	if heap1-heap0 > 64 {
		t.Errorf("heap grew %.1f MiB under the flood (bound 64)", heap1-heap0)
	}
	if join > time.Second || apply > time.Second {
		t.Errorf("newcomer joined in %v, invalidation applied in %v (bound 1s each)", join, apply)
	}
	// 10× of a loopback quiet latency (tens of µs) is below a scheduler
	// tick on a loaded 2-core machine: the bound has a 20 ms floor.
	if bound := max(10*quiet, 20*time.Millisecond); during > bound {
		t.Errorf("invalidation latency during the flood %v, bound %v (quiet %v)", during, bound, quiet)
	}
}
