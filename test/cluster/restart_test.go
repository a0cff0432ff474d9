package cluster

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestCrashRestart kills one node with SIGKILL: the others must declare it
// dead within the configured time; restarted with the same id and port it
// must rejoin with a higher boot epoch and receive new invalidations.
func TestCrashRestart(t *testing.T) {
	needCluster(t)
	const batch = 10_000
	// Silence is noticed on the membership tick after DeadAfter; allow a
	// heartbeat of phase, a tick and scheduling noise on two busy cores.
	limit := deadAfter + 2*heartbeat + 400*time.Millisecond
	m := newMesh(t, 4)
	var nodes []*node
	for _, h := range m.hosts {
		nodes = append(nodes, h.start(nodeConfig{}))
	}
	waitMembers(t, 10*time.Second, nodes...)
	pub, victim := nodes[0], nodes[3]
	first := pub.publish(t, batch, 0)

	killed := victim.crash(t)
	survivors := nodes[:3]
	fastest, slowest := waitEvents(t, 5*time.Second, "dead", killed, survivors, []*node{victim})
	t.Logf("kill -9 %s: declared dead after %v..%v (limit %v)", victim.label, fastest, slowest, limit)
	if slowest > limit {
		t.Errorf("a survivor took %v to declare the killed node dead, want ≤ %v (DeadAfter %v)", slowest, limit, deadAfter)
	}

	restarted := time.Now()
	again := m.hosts[3].start(nodeConfig{id: victim.id})
	if again.epoch <= victim.epoch {
		t.Fatalf("restarted node has epoch %d, not above its old %d", again.epoch, victim.epoch)
	}
	_, rejoin := waitEvents(t, 5*time.Second, "join", restarted, survivors, []*node{again})
	for _, s := range survivors {
		if e, _ := s.eventAfter("join", again.id, restarted); e.epoch != again.epoch {
			t.Errorf("%s saw the rejoin with epoch %d, want the new epoch %d", s.label, e.epoch, again.epoch)
		}
	}
	live := append(append([]*node{}, survivors...), again)
	waitMembers(t, 5*time.Second, live...)
	t.Logf("restart: rejoined (new epoch seen by all) after ≤ %v", rejoin)

	last := pub.publish(t, batch, 0)
	newOnly, per, _ := settle(t, repairTimeout+10*time.Second,
		stream{pub: pub, from: first + 1, to: last, recvs: others(live, pub)})
	logTallies(t, per)
	if got := per[again.label]; got.delivered+got.flagged == 0 || got.silent != 0 {
		t.Fatalf("the restarted node after its rejoin: %v", got)
	}
	stayed, _, _ := settle(t, 5*time.Second, stream{pub: pub, from: 1, to: last, recvs: nodes[1:3]})
	total := newOnly
	total.add(stayed)
	repaired, gapEvents, p50, p99, worst := repairStats(t, live...)
	r := fromTally("4 kill -9 one node, restart same id and port", total)
	r.repaired = repaired
	r.detection = fmt.Sprintf("dead after %s..%s (DeadAfter %s); rejoin ≤ %s", ms(fastest), ms(slowest), ms(deadAfter), ms(rejoin))
	r.repair = repairText(repaired, p50, p99, worst)
	r.notes = fmt.Sprintf("new epoch seen by all survivors; restarted node: %v; %d Gap events", per[again.label], gapEvents)
	record(t, r)
	if total.silent != 0 || total.wrong != 0 {
		t.Fatalf("silent misses: %v\n%s", total, diagnoseAll(live))
	}
}

// TestRollingRestart restarts h2..h5 one after another (graceful leave,
// same id) while h1 publishes 20k invalidations per second: no node may
// ever be declared dead, and every node life must account for every
// invalidation published while it was up and joined.
func TestRollingRestart(t *testing.T) {
	needCluster(t)
	const rate = 20_000
	m := newMesh(t, 5)
	var nodes []*node
	for _, h := range m.hosts {
		nodes = append(nodes, h.start(nodeConfig{}))
	}
	waitMembers(t, 10*time.Second, nodes...)
	pub := nodes[0]
	pub.startPublish(t, 0, rate)
	from := map[*node]uint64{} // first sequence each life owes
	for _, n := range nodes[1:] {
		from[n] = 1
	}
	current := append([]*node{}, nodes...)
	var total tally
	var rejoins []time.Duration
	for i := 1; i < len(current); i++ {
		old := current[i]
		// Let every life live under load for a while: 5000 invalidations.
		target := pubTotal(pub) + 5000
		waitFor(t, "the publisher advances", 10*time.Second, func() bool { return pubTotal(pub) >= target }, pub.diagnose)
		hwm := hwmOf(t, pub)
		v, _, _ := settle(t, repairTimeout+5*time.Second, stream{pub: pub, from: from[old], to: hwm, recvs: []*node{old}})
		t.Logf("%s before its restart: seqs %d..%d: %v", old.label, from[old], hwm, v)
		total.add(v)
		old.stop(t)
		began := time.Now()
		n := m.hosts[i].start(nodeConfig{id: old.id})
		current[i] = n
		waitMembers(t, 5*time.Second, current...)
		rejoins = append(rejoins, time.Since(began))
		from[n] = hwmOf(t, pub) + 1
	}
	target := pubTotal(pub) + 5000
	waitFor(t, "the publisher advances", 10*time.Second, func() bool { return pubTotal(pub) >= target }, pub.diagnose)
	pub.send(t, "stop")
	waitFor(t, "the load stops", 5*time.Second, func() bool {
		pub.mu.Lock()
		defer pub.mu.Unlock()
		return len(pub.replies["published"]) > 0
	}, pub.diagnose)
	last := hwmOf(t, pub)
	var finals []stream
	for _, n := range current[1:] {
		finals = append(finals, stream{pub: pub, from: from[n], to: last, recvs: []*node{n}})
	}
	v, per, _ := settle(t, repairTimeout+5*time.Second, finals...)
	logTallies(t, per)
	total.add(v)

	var deaths []string
	for _, h := range m.hosts {
		for _, life := range h.lives {
			for _, x := range m.hosts {
				for _, other := range x.lives {
					if c := life.countEvents("dead", other.id); c > 0 {
						deaths = append(deaths, fmt.Sprintf("%s saw %s dead %d×", life.label, other.label, c))
					}
				}
			}
		}
	}
	repaired, gapEvents, p50, p99, worst := repairStats(t, current...)
	r := fromTally("5 rolling restart of 4 nodes under 20k/s", total)
	r.repaired = repaired
	r.detection = fmt.Sprintf("restart → full mesh %s", durations(rejoins))
	r.repair = repairText(repaired, p50, p99, worst)
	r.notes = fmt.Sprintf("%d frames published; dead events: %d; Gap events (final lives): %d", last, len(deaths), gapEvents)
	record(t, r)
	if len(deaths) > 0 {
		t.Errorf("the mesh lost a member during the rolling restart: %s", strings.Join(deaths, "; "))
	}
	if total.silent != 0 || total.wrong != 0 {
		t.Fatalf("silent misses at nodes while they were up: %v\n%s", total, diagnoseAll(current))
	}
}

// hwmOf returns the publisher's highest sequence packed so far.
func hwmOf(t *testing.T, pub *node) uint64 {
	t.Helper()
	f := strings.Fields(pub.ask(t, "hwm", "hwm"))
	var seq uint64
	if len(f) < 2 || !scan(f[1:2], &seq) {
		t.Fatalf("bad hwm reply %q", f)
	}
	return seq
}

func repairText(repaired int64, p50, p99, worst time.Duration) string {
	if repaired == 0 {
		return "no loss to repair"
	}
	return fmt.Sprintf("p50 ≤ %s, p99 ≤ %s, max %s", ms(p50), ms(p99), ms(worst))
}

func durations(ds []time.Duration) string {
	var parts []string
	for _, d := range ds {
		parts = append(parts, ms(d))
	}
	return strings.Join(parts, ", ")
}

func pubTotal(n *node) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.pubTotal
}
