package memnet_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/warpmesh/warpmesh/engine"
	"github.com/warpmesh/warpmesh/engine/memnet"
)

// The scale suite: a cold start of N nodes on one memnet, steady state,
// one origin and ten concurrent origins publishing on a loss-free network,
// a 10% restart wave, crashed members to detect, then one origin
// publishing again with 2% loss on every link. It reports (and bounds)
// convergence in protocol periods, membership traffic per node, false
// suspicions and deaths, failure detection time, memory and CPU per node,
// coverage, copies per frame and Gap events (none on the loss-free
// network; under loss every key applied or flagged, no silent miss). Above DirectLimit (32)
// membership is SWIM with Lifeguard (engine/probe.go).
//
// Without WARPMESH_SCALE it runs a short variant: N=100 with a 250 ms
// period, or under -race (CI runs both) N=48 with a 1 s period, settling
// and measuring steady state over 10 periods each.
// WARPMESH_SCALE=100,1000 runs the long suite with a 1 s period
// (WARPMESH_SCALE_PERIOD overrides it, e.g. 500ms; WARPMESH_SCALE_STAGGER=k
// starts k nodes per period instead of all at once, and convergence is
// then timed from the last start).

// scaleKeyring, with WARPMESH_SCALE_KEYRING=1, seals every frame of the
// suite with one shared key: members learned from an authenticated
// member's gossip are then taken on its word instead of each address
// being challenged by every node (about 6 N² frames in a cold start).
var scaleKeyring = func() *engine.Keyring {
	if os.Getenv("WARPMESH_SCALE_KEYRING") != "1" {
		return nil
	}
	kr, err := engine.NewKeyring(make([]byte, engine.KeySize))
	if err != nil {
		panic(err)
	}
	return kr
}()

func scaleSizes(t *testing.T) (sizes []int, period time.Duration) {
	env := os.Getenv("WARPMESH_SCALE")
	if env == "" {
		if raceEnabled {
			// The race detector slows the data path tenfold: ten origins
			// publishing 10k keys each overrun 48 receivers with a 250 ms
			// period (with heartbeats as well as with SWIM).
			return []int{48}, time.Second
		}
		return []int{100}, 250 * time.Millisecond
	}
	for _, f := range strings.Split(env, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 8 {
			t.Fatalf("WARPMESH_SCALE=%q: want sizes like 100,1000", env)
		}
		sizes = append(sizes, n)
	}
	period = time.Second
	if p := os.Getenv("WARPMESH_SCALE_PERIOD"); p != "" {
		d, err := time.ParseDuration(p)
		if err != nil || d < 10*time.Millisecond {
			t.Fatalf("WARPMESH_SCALE_PERIOD=%q: want a duration like 500ms", p)
		}
		period = d
	}
	return sizes, period
}

func TestScale(t *testing.T) {
	sizes, period := scaleSizes(t)
	for _, size := range sizes {
		t.Run(strconv.Itoa(size), func(t *testing.T) { scaleRun(t, size, period) })
	}
}

func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// scaleEvents counts membership events by member, for false positives
// and failure detection.
type scaleEvents struct {
	mu          sync.Mutex
	deaths      int
	suspicions  int
	gaps        int
	firstSus    map[uint64]time.Time
	deadBy      map[uint64]int
	lastDead    map[uint64]time.Time
	watch       map[uint64]bool
	watchedDead int
	gapLog      []string // the first Gap events, for the failure message
}

func (s *scaleEvents) on(e engine.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch e.Type {
	case engine.EventDead:
		s.deaths++
		if s.watch[e.Member.ID] {
			s.deadBy[e.Member.ID]++
			s.lastDead[e.Member.ID] = time.Now()
			s.watchedDead++
		}
	case engine.EventSuspect:
		s.suspicions++
		if _, ok := s.firstSus[e.Member.ID]; !ok && s.watch[e.Member.ID] {
			s.firstSus[e.Member.ID] = time.Now()
		}
	case engine.EventGap:
		s.gaps++
		if len(s.gapLog) < 8 {
			s.gapLog = append(s.gapLog, fmt.Sprintf("%s: origin %x, %d missing in %d-%d", e.Gap.Reason, e.Gap.Origin, e.Gap.Missing, e.Gap.First, e.Gap.Last))
		}
	}
}

func (s *scaleEvents) counts() (deaths, suspicions, gaps int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.deaths, s.suspicions, s.gaps
}

// scaleMesh is the simulated mesh; nodes can be crashed and restarted in
// place (same address, new id and epoch).
type scaleMesh struct {
	t      *testing.T
	net    *memnet.Network
	period time.Duration
	ev     *scaleEvents
	nodes  []*engine.Node
}

// newScaleMesh is an empty mesh of size slots on its own memnet; its
// nodes are aborted when the test ends.
func newScaleMesh(t *testing.T, size int, period time.Duration) *scaleMesh {
	ev := &scaleEvents{firstSus: map[uint64]time.Time{}, deadBy: map[uint64]int{}, lastDead: map[uint64]time.Time{}, watch: map[uint64]bool{}}
	m := &scaleMesh{t: t, net: newNet(t, int64(size)), period: period, ev: ev, nodes: make([]*engine.Node, size)}
	t.Cleanup(func() {
		for _, node := range m.nodes {
			if node != nil {
				node.Abort()
			}
		}
	})
	return m
}

func (m *scaleMesh) start(i int) *engine.Node {
	m.t.Helper()
	ep, err := m.net.Listen(simAddr(i))
	if err != nil {
		m.t.Fatal(err)
	}
	o := engine.Options{
		Heartbeat:        m.period,
		SuspectAfter:     5 * m.period,
		DeadAfter:        10 * m.period,
		Fanout:           4,
		BatchSize:        8,
		PublishRing:      1 << 14,
		RetransmitBuffer: scaleRetransmitBuffer(),
		Logger:           quietLogger,
		OnEvent:          m.ev.on,
		Transport:        ep,
		AdvertiseAddr:    ep.LocalAddr().String(),
		ChallengeRate:    scaleChallengeRate(len(m.nodes)),
		EchoLocal:        true, // the loss phase's coverage needs each key's seq (sim_test.go)
	}
	if scaleKeyring != nil {
		o.Keyring = scaleKeyring // members are vouched for by gossip (engine: vouchLocked)
	}
	for _, s := range []int{0, 1, 2} {
		if s != i {
			o.Peers = append(o.Peers, simAddr(s).String())
		}
	}
	node, err := engine.New(o)
	if err != nil {
		m.t.Fatalf("node %d: %v", i, err)
	}
	m.nodes[i] = node
	return node
}

// converge waits until every running node sees every other alive (by id)
// and is ready, and returns how long that took.
func (m *scaleMesh) converge(what string, limit time.Duration) time.Duration {
	m.t.Helper()
	start := time.Now()
	deadline := start.Add(limit)
	for lastLog := start; ; {
		lo, ready := len(m.nodes), 0
		var asks, answers, frames uint64
		for _, node := range m.nodes {
			s := node.Stats()
			lo = min(lo, s.MembersAlive)
			if node.Ready() {
				ready++
			}
			asks, answers, frames = asks+s.JoinAsksSent, answers+s.JoinAnswersSent, frames+s.FramesSent
		}
		if lo == len(m.nodes)-1 && ready == len(m.nodes) && m.knowEachOther() {
			return time.Since(start)
		}
		if time.Since(lastLog) > 10*time.Second {
			d, s, _ := m.ev.counts()
			m.t.Logf("N=%d %s after %v: fewest alive members known %d of %d, ready %d; network drops %v; suspicions %d, deaths %d so far; frames sent %d, JOIN asks %d, answers %d", len(m.nodes), what,
				time.Since(start).Round(time.Second), lo, len(m.nodes)-1, ready, m.net.Stats().Drops, s, d, frames, asks, answers)
			for i, node := range m.nodes {
				if s := node.Stats(); s.MembersAlive == lo {
					m.t.Logf("  node %d: alive %d suspect %d dead %d left %d unvalidated %d; challenges %d (%d suppressed), responses %d (%d suppressed), validations %d; drops %v",
						i, s.MembersAlive, s.MembersSuspect, s.MembersDead, s.MembersLeft, s.MembersUnvalidated,
						s.ChallengesSent, s.ChallengesSuppressed, s.ResponsesSent, s.ResponsesSuppressed, s.Validations, s.Drops)
					break
				}
			}
			lastLog = time.Now()
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("N=%d %s: not converged after %v: fewest alive members known %d of %d, ready %d of %d",
				len(m.nodes), what, limit, lo, len(m.nodes)-1, ready, len(m.nodes))
		}
		// Polling interval, not synchronisation: Stats walks the member
		// table, so polling 1000 nodes every 10 ms would cost more CPU
		// than the mesh it watches.
		time.Sleep(max(m.period/4, 10*time.Millisecond))
	}
}

// knowEachOther reports whether every running node lists every other by
// id as alive: a count of alive members alone would let a crashed id a
// node still lists alive stand in for a newcomer it does not know yet.
func (m *scaleMesh) knowEachOther() bool {
	ids := make(map[uint64]bool, len(m.nodes))
	for _, node := range m.nodes {
		ids[node.ID()] = true
	}
	for _, node := range m.nodes {
		known := 0
		for _, mb := range node.Members() {
			if mb.State == engine.StateAlive && ids[mb.ID] {
				known++
			}
		}
		if known != len(m.nodes)-1 {
			return false
		}
	}
	return true
}

// publishFrom starts, for each origin (an index in m.nodes), a goroutine
// that publishes keys 16-byte keys (the origin's rank, then j) and stops
// early only if the node closes.
func (m *scaleMesh) publishFrom(origins []int, keys int) {
	for k, o := range origins {
		go func() {
			key := make([]byte, 16)
			binary.BigEndian.PutUint64(key, uint64(k))
			for j := 0; j < keys; j++ {
				binary.BigEndian.PutUint64(key[8:], uint64(j))
				if err := m.nodes[o].Publish(context.Background(), key, false); err != nil {
					return
				}
			}
		}()
	}
}

func (m *scaleMesh) traffic() (frames, bytes uint64) {
	for _, node := range m.nodes {
		s := node.Stats()
		frames += s.FramesSent
		bytes += s.BytesSent
	}
	return
}

func scaleRun(t *testing.T, size int, period time.Duration) {
	heap0 := heapInUse()
	m := newScaleMesh(t, size, period)
	ev := m.ev
	periods := func(d time.Duration) float64 { return d.Seconds() / period.Seconds() }
	logN := math.Log2(float64(size))

	// Cold start: every node at once, three seeds; or, with
	// WARPMESH_SCALE_STAGGER=k, k nodes per period (a rollout).
	cpu0, wall0 := processCPU(), time.Now()
	stagger, _ := strconv.Atoi(os.Getenv("WARPMESH_SCALE_STAGGER"))
	for i := range m.nodes {
		m.start(i)
		if stagger > 0 && i%stagger == stagger-1 {
			time.Sleep(period) // pacing the rollout, not synchronisation
		}
	}
	limit := 3 * time.Minute
	if d, err := time.ParseDuration(os.Getenv("WARPMESH_SCALE_CONVERGE")); err == nil && d > 0 {
		limit = d // a longer bound, to measure what follows at sizes that converge slowly
	}
	cold := m.converge("cold start", limit)
	coldCPU := processCPU() - cpu0
	dConv, coldSus, _ := ev.counts()

	// Steady state: let the join wave's catch-up end and its queued news
	// drain, then measure membership traffic over a window.
	settle, window := 20*period, 20*period
	if os.Getenv("WARPMESH_SCALE") == "" {
		settle, window = 10*period, 10*period
	}
	time.Sleep(settle) // letting the mesh settle, not synchronisation
	f0, b0 := m.traffic()
	t0 := time.Now()
	time.Sleep(window) // a measurement window, not synchronisation
	elapsed := time.Since(t0).Seconds()
	f1, b1 := m.traffic()
	perNodeDgrams := float64(f1-f0) / float64(size) / elapsed
	perNodeBytes := float64(b1-b0) / float64(size) / elapsed
	_, quietSus, _ := ev.counts() // suspicion events up to the end of the quiet window
	t.Logf("N=%d: cold start converged in %v = %.1f periods (%.1f CPU-s); steady membership %.2f datagrams, %.0f B per node per s over %v",
		size, cold.Round(time.Millisecond), periods(cold), coldCPU.Seconds(), perNodeDgrams, perNodeBytes, window)

	// One origin, then 10 concurrent origins, 10k keys each.
	copies := func() (first, dup uint64) {
		for _, node := range m.nodes {
			s := node.Stats()
			first += s.DataFrames
			dup += s.Duplicates
		}
		return
	}
	got := make([]atomic.Int64, size)
	for i, node := range m.nodes {
		id := node.ID()
		node.OnInvalidate(func(inv engine.Invalidation) {
			if inv.Origin != id { // EchoLocal: a node's own keys are not news to it
				got[i].Add(1)
			}
		})
	}
	publish := func(origins []int, keys int) time.Duration {
		for i := range got {
			got[i].Store(0)
		}
		t0 := time.Now()
		m.publishFrom(origins, keys)
		want := func(i int) int64 {
			w := int64(len(origins) * keys)
			for _, o := range origins {
				if o == i {
					w -= int64(keys)
				}
			}
			return w
		}
		deadline := time.Now().Add(scalePublishLimit)
		for {
			short := 0
			for i := range m.nodes {
				if got[i].Load() < want(i) {
					short++
				}
			}
			if short == 0 {
				break
			}
			if time.Now().After(deadline) {
				_, _, g := ev.counts()
				var det, nacks, retr uint64
				for i, node := range m.nodes {
					st := node.Stats()
					det, nacks, retr = det+st.GapsDetected, nacks+st.NacksSent, retr+st.Retransmitted
					if got[i].Load() < want(i) {
						t.Logf("node %d: %d of %d; alive %d suspect %d dead %d; origins %d; drops %v", i, got[i].Load(), want(i),
							st.MembersAlive, st.MembersSuspect, st.MembersDead, st.Origins, st.Drops)
					}
				}
				t.Logf("net drops %v; gaps detected %d, NACKs %d, retransmitted %d", m.net.Stats().Drops, det, nacks, retr)
				ev.mu.Lock()
				first := ev.gapLog
				ev.mu.Unlock()
				t.Fatalf("N=%d: after 2m %d nodes lack invalidations from %d origins (Gap events %d; first: %v)", size, short, len(origins), g, first)
			}
			time.Sleep(10 * time.Millisecond) // polling interval, not synchronisation (counters only)
		}
		return time.Since(t0)
	}
	// Under the race detector (CI's smoke run, N=48) each origin publishes
	// 2k keys: the run checks the relay, repair and Plumtree paths for
	// data races, and at 10k keys the tenfold slower data path overran
	// the receivers on a loaded machine (1.4 copies per frame, Gap events).
	keys := 10_000
	if raceEnabled {
		keys = 2_000
	}
	c0, u0 := copies()
	_, _, g0 := ev.counts()
	one := publish([]int{size / 2}, keys)
	c1, u1 := copies()
	_, _, g1 := ev.counts()
	ten := make([]int, 10)
	for i := range ten {
		ten[i] = (i*size/10 + 3) % size
	}
	tenT := publish(ten, keys)
	c2, u2 := copies()
	d2, s2, g2 := ev.counts()
	steadyFor := time.Since(wall0) - cold
	heap := heapInUse() - min(heap0, heapInUse())

	// The wave starts from a steady mesh: ten origins saturating the
	// cores of one process leave suspicions in flight (~100 at N=1000,
	// update queues hundreds deep), and a wave started among them
	// measures their clearing more than its own (rewave_diag_test.go:
	// ~10 periods without publishing before it, ~31 straight after).
	// Wait, bounded, until no node suspects anyone.
	calm0 := time.Now()
	for time.Since(calm0) < 2*time.Minute {
		suspects := 0
		for _, node := range m.nodes {
			suspects += node.Stats().MembersSuspect
		}
		if suspects == 0 {
			break
		}
		time.Sleep(max(m.period/4, 10*time.Millisecond)) // polling interval, not synchronisation
	}
	calm := time.Since(calm0)

	// A 10% restart wave: crash a tenth of the nodes (no seed), start new
	// ones at their addresses, and wait for the mesh to be whole again.
	// The wave spares the nodes that just published: a node started in
	// the wave that hears (from an IHAVE re-announced for 2 s) of a
	// crashed origin's frames it never got cannot tell they predate its
	// cache, and rightly raises a Gap for them (joining without a window)
	// — a loss, not the loss-free case this suite bounds (at 4ad6eb3 that
	// gave 1 of 2 runs two `unreachable` Gaps covering node 3's stream).
	published := map[int]bool{size / 2: true}
	for _, o := range ten {
		published[o] = true
	}
	wave := max(size/10, 1)
	waved := make([]int, 0, wave)
	for i := 0; i < wave; i++ {
		j := 3 + i*(size-3)/wave
		for published[j] || slices.Contains(waved, j) {
			j = 3 + (j-3+1)%(size-3)
		}
		waved = append(waved, j)
	}
	for _, j := range waved {
		m.nodes[j].Abort()
	}
	for _, j := range waved {
		m.start(j)
	}
	restart := m.converge("restart wave", limit)
	_, _, g3 := ev.counts()

	// Failure detection: crash three nodes; every other node must declare
	// each dead, and nothing else may die.
	const crashed = 3
	victims := []int{size/3 + 1, size/2 + 1, 2*size/3 + 1}
	ev.mu.Lock()
	for _, v := range victims {
		ev.watch[m.nodes[v].ID()] = true
	}
	ev.mu.Unlock()
	dBefore, _, _ := ev.counts()
	crashAt := time.Now()
	for _, v := range victims {
		m.nodes[v].Abort()
	}
	want := crashed * (size - crashed)
	detectLimit := time.Duration(float64(swimLongestSuspicion(size)+5) * float64(period))
	waitFor(t, detectLimit, "every node to declare the crashed nodes dead", func() bool {
		ev.mu.Lock()
		defer ev.mu.Unlock()
		return ev.watchedDead >= want
	})
	ev.mu.Lock()
	var firstSum, allSum time.Duration
	for id := range ev.watch {
		firstSum += ev.firstSus[id].Sub(crashAt)
		allSum += ev.lastDead[id].Sub(crashAt)
	}
	otherDeaths := ev.deaths - dBefore - ev.watchedDead
	ev.mu.Unlock()
	firstSus := firstSum / crashed
	allDead := allSum / crashed

	// 2% loss on every link: one origin publishes again, and every key
	// must reach every live node or be covered by a Gap event there (no
	// silent miss); what repair could not recover is counted.
	_, _, g5 := ev.counts()
	lossPub := m.nodes[size/2]
	var lossRecv []*engine.Node
	for i, node := range m.nodes {
		if i != size/2 && !slices.Contains(victims, i) {
			lossRecv = append(lossRecv, node)
		}
	}
	cov := newCoverage(lossPub, keys, lossRecv...)
	if err := m.net.SetDefaultLink(memnet.Link{Loss: 0.02}); err != nil {
		t.Fatal(err)
	}
	lossT0 := time.Now()
	publishIndexed(t, lossPub, 0, keys)
	cov.waitSettled(t, scalePublishLimit, 0, keys)
	lossT := time.Since(lossT0)
	m.net.ResetLinks()
	var flagged, lossShort int
	for r := range lossRecv {
		_, f, _ := cov.account(r, 0, keys)
		flagged += f
		if f > 0 {
			lossShort++
		}
	}
	_, _, g6 := ev.counts()
	lossDrops := m.net.Stats().Drops
	totalCPU := processCPU() - cpu0
	wall := time.Since(wall0)

	t.Logf("N=%d, period %v, %d CPUs, load %s", size, period, runtime.NumCPU(), loadAvg())
	t.Logf("N=%d: cold start converged in %v = %.1f periods (log2 N = %.1f; %.1f CPU-s, %d suspicions on the way); 10%% restart wave (%d nodes, %.1f periods after publishing for the last suspicion to clear) converged in %v = %.1f periods",
		size, cold.Round(time.Millisecond), periods(cold), logN, coldCPU.Seconds(), coldSus, wave, periods(calm), restart.Round(time.Millisecond), periods(restart))
	t.Logf("N=%d: steady membership %.2f datagrams, %.0f B per node per s; from convergence to the end of publishing (%v): false deaths %d, false suspicion events %d (%d in the settle and quiet windows, %d while publishing; one suspicion is an event at every node it reaches)",
		size, perNodeDgrams, perNodeBytes, steadyFor.Round(time.Second), d2-dConv, s2-coldSus, quietSus-coldSus, s2-quietSus)
	t.Logf("N=%d: crash of %d nodes: first suspicion after %.2f periods on average (SWIM: first probe within e/(e-1) = 1.58, plus one period to fail), dead everywhere after %.1f periods; other deaths %d",
		size, crashed, periods(firstSus), periods(allDead), otherDeaths)
	t.Logf("N=%d: heap %.1f KiB per node; CPU %.1f ms per node per s over %v",
		size, float64(heap)/1024/float64(size), totalCPU.Seconds()*1000/float64(size)/wall.Seconds(), wall.Round(time.Second))
	_, _, g4 := ev.counts()
	t.Logf("N=%d: 1 origin × %d keys to all in %v, copies per frame %.3f; 10 origins × %d in %v, copies per frame %.3f; Gap events %d (before publishing %d, 1 origin %d, 10 origins %d, restart wave %d, crashes %d), deaths while publishing %d",
		size, keys, one.Round(time.Millisecond), float64(c1-c0+u1-u0)/float64(max(c1-c0, 1)),
		keys, tenT.Round(time.Millisecond), float64(c2-c1+u2-u1)/float64(max(c2-c1, 1)), g4, g0, g1-g0, g2-g1, g3-g2, g4-g3, d2-dConv)
	t.Logf("N=%d: 2%% loss on every link, 1 origin × %d keys: settled in %v, 0 silent misses; %d keys at %d nodes flagged by Gap events (%d events), network drops %v",
		size, keys, lossT.Round(time.Millisecond), flagged, lossShort, g6-g5, lossDrops)

	// Every key reached every node (publish waits for it): no silent miss
	// in any build, and no Gap event while publishing. Under the race
	// detector (CI's N=48 smoke run) Gap events after publishing are
	// reported, not failed: the crash phase kills node 17 (size/3+1), one
	// of the ten publishers, and a node started in the restart wave that
	// is still repairing 17's earlier frames then gives them up (a node
	// ready before it knew of an origin is owed that origin's whole epoch,
	// join.go). That was the `unreachable` tail Gap of 4-10 frames in 2
	// of 7 runs at 8be5416 and 4 of 5 at 3c6124d (whose tree children
	// waited up to 2.5 s on a silent parent before asking the origin); 0
	// of 5 since the wait on a silent parent is 4 parent windows. The
	// normal build keeps every bound over the whole run, and CI runs its
	// N=100 variant.
	check := t.Errorf
	if raceEnabled {
		check = t.Logf
	}
	if g := g2 - g0; g != 0 {
		ev.mu.Lock()
		t.Errorf("%d Gap events while publishing on a loss-free network; first: %v", g, ev.gapLog)
		ev.mu.Unlock()
	} else if g := g5; g != 0 {
		ev.mu.Lock()
		check("%d Gap events on a loss-free network; first: %v", g, ev.gapLog)
		ev.mu.Unlock()
	}
	if d := d2 - dConv; d != 0 {
		t.Errorf("%d false deaths in steady state", d)
	}
	if otherDeaths != 0 {
		t.Errorf("%d deaths of live nodes while detecting the crashed ones", otherDeaths)
	}
	if c := float64(c2-c0+u2-u0) / float64(max(c2-c0, 1)); c > 1.15 {
		t.Errorf("%.3f copies per node per frame, want <= 1.15", c)
	}
	if size > 32 {
		// SWIM's budget: a probe and an ack each way per period, a few
		// indirect probes, push-pull bytes flat in N.
		if perNodeDgrams > 4/period.Seconds() {
			t.Errorf("%.2f membership datagrams per node per s, want <= 4 per period", perNodeDgrams)
		}
	}
}

// scaleChallengeRate paces address validation in big simulated meshes.
// A cold start validates every pair of nodes (a challenge, a RESPONSE and
// a greeting each way: about 6·N² frames), and here N nodes share two
// cores: at the default 1000 challenges per second per node, N=1000 asks
// for 3M frames a second of a machine that carries about 200k, and the
// overload (full queues, probes timing out) turns into false suspicions
// and deaths that cost more validation still. Above 300 nodes the suite
// gives the whole mesh 50k challenges a second (50 per node at N=1000),
// what the machine carries; on separate hosts the default stands.
func scaleChallengeRate(n int) int {
	if n <= 300 {
		return 0 // the default
	}
	return max(50000/n, 1)
}

// scaleRetransmitBuffer is each node's retransmit ring: 256 KiB (small,
// for memory at N=1000), or WARPMESH_SCALE_RTX KiB. It also sets the
// per-member repair budget (an eighth as burst, a quarter per second).
func scaleRetransmitBuffer() int {
	if k, err := strconv.Atoi(os.Getenv("WARPMESH_SCALE_RTX")); err == nil && k > 0 {
		return k << 10
	}
	return 256 << 10
}

// scalePublishLimit bounds one publishing phase.
var scalePublishLimit = 2 * time.Minute

// swimLongestSuspicion is the longest suspicion, in periods, the engine's
// constants give a mesh of n (β·α·max(1, log10 n)), plus the probe.
func swimLongestSuspicion(n int) float64 {
	return 6*4*max(1, math.Log10(float64(n))) + 2
}

// loadAvg is the machine's 1, 5 and 15 minute load averages.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// processCPU is the CPU time (user + system) the test process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Above DirectLimit the mesh switches to SWIM: a node sends a few probe
// frames per period instead of a heartbeat to every member, detects a
// crash, and when the mesh shrinks back to DirectLimit it heartbeats
// everyone again.
func TestSwimAboveDirectLimit(t *testing.T) {
	const size, limit = 12, 4
	period := 50 * time.Millisecond
	if raceEnabled {
		period = 100 * time.Millisecond
	}
	ev := &scaleEvents{firstSus: map[uint64]time.Time{}, deadBy: map[uint64]int{}, lastDead: map[uint64]time.Time{}, watch: map[uint64]bool{}}
	n := newNet(t, 12)
	nodes := startMesh(t, n, size, []int{0, 1}, func(i int) engine.Options {
		return engine.Options{Heartbeat: period, SuspectAfter: 5 * period, DeadAfter: 10 * period,
			DirectLimit: limit, PublishRing: 1 << 12, OnEvent: ev.on}
	})
	waitMesh(t, 20*time.Second, nodes)
	// Membership traffic: SWIM sends about two frames per period (a ping
	// and an ack); all-to-all heartbeats would send size-1.
	time.Sleep(10 * period) // let the join wave's push-pulls end, not synchronisation
	var f0, h0 uint64
	for _, node := range nodes {
		s := node.Stats()
		f0, h0 = f0+s.FramesSent, h0+s.HeartbeatsSent
	}
	t0 := time.Now()
	time.Sleep(20 * period) // a measurement window, not synchronisation
	rounds := time.Since(t0).Seconds() / period.Seconds()
	var f1, h1 uint64
	for _, node := range nodes {
		s := node.Stats()
		f1, h1 = f1+s.FramesSent, h1+s.HeartbeatsSent
	}
	perRound := float64(f1-f0) / size / rounds
	t.Logf("%d nodes, DirectLimit %d: %.2f frames per node per period, %d heartbeat rounds", size, limit, perRound, h1-h0)
	if perRound > 5 || perRound < 1 {
		t.Errorf("%.2f membership frames per node per period, want SWIM's 1..5 (heartbeats would send %d)", perRound, size-1)
	}
	if h1 != h0 {
		t.Errorf("%d heartbeat rounds above DirectLimit, want none (every seed is a live member)", h1-h0)
	}
	// Crash all but limit nodes: each is declared dead everywhere, and the
	// survivors go back to heartbeats.
	survivors := nodes[:limit]
	ev.mu.Lock()
	for _, node := range nodes[limit:] {
		ev.watch[node.ID()] = true
	}
	ev.mu.Unlock()
	for _, node := range nodes[limit:] {
		node.Abort()
	}
	waitFor(t, 30*time.Second, "the survivors to declare the crashed dead", func() bool {
		for _, node := range survivors {
			if s := node.Stats(); s.MembersAlive+s.MembersSuspect != limit-1 {
				return false
			}
		}
		return true
	})
	var hb0 uint64
	for _, node := range survivors {
		hb0 += node.Stats().HeartbeatsSent
	}
	waitFor(t, 10*time.Second, "heartbeats again at DirectLimit", func() bool {
		var hb uint64
		for _, node := range survivors {
			hb += node.Stats().HeartbeatsSent
		}
		return hb >= hb0+3*limit
	})
	ev.mu.Lock()
	falseDeaths := ev.deaths - ev.watchedDead
	ev.mu.Unlock()
	if falseDeaths != 0 {
		t.Errorf("%d deaths of live nodes", falseDeaths)
	}
}
