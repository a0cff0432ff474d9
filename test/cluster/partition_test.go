package cluster

import (
	"fmt"
	"testing"
	"time"
)

// TestPartition splits {h1,h2} | {h3,h4} for longer than the dead timeout
// while h1 and h3 keep publishing, then heals: each side must see the
// other dead, then alive again, and every invalidation published during
// the partition must be applied or flagged on the other side after the
// heal.
func TestPartition(t *testing.T) {
	needCluster(t)
	needNft(t)
	const batch = 5000
	m := newMesh(t, 4)
	var nodes []*node
	for _, h := range m.hosts {
		nodes = append(nodes, h.start(nodeConfig{}))
	}
	waitMembers(t, 10*time.Second, nodes...)
	left, right := nodes[:2], nodes[2:]
	pubs := []*node{nodes[0], nodes[2]} // h1 and h3
	for _, p := range pubs {
		p.publish(t, batch, 0)
	}
	var before [2]uint64
	for i, p := range pubs {
		before[i] = p.highSeq()
	}

	cut := time.Now()
	partition(m.hosts[:2], m.hosts[2:])
	_, deadL := waitEvents(t, 5*time.Second, "dead", cut, left, right)
	_, deadR := waitEvents(t, 5*time.Second, "dead", cut, right, left)
	t.Logf("partition: left sees right dead after ≤ %v, right sees left dead after ≤ %v", deadL, deadR)

	// Published while cut off: each side gets its own side's at once.
	var during [2]uint64
	for i, p := range pubs {
		during[i] = p.publish(t, batch, 0)
	}
	sameSide, _, _ := settle(t, 10*time.Second,
		stream{pub: pubs[0], from: before[0] + 1, to: during[0], recvs: []*node{nodes[1]}},
		stream{pub: pubs[1], from: before[1] + 1, to: during[1], recvs: []*node{nodes[3]}})
	if sameSide.silent != 0 || sameSide.flagged != 0 {
		t.Fatalf("inside one side of the partition: %v", sameSide)
	}

	healed := time.Now()
	heal(m.hosts)
	_, aliveAll := waitEvents(t, 5*time.Second, "join", healed, left, right)
	_, aliveAll2 := waitEvents(t, 5*time.Second, "join", healed, right, left)
	aliveAll = max(aliveAll, aliveAll2)
	t.Logf("heal: every node sees the other side alive after ≤ %v", aliveAll)

	crossing := []stream{
		{pub: pubs[0], from: before[0] + 1, to: during[0], recvs: right},
		{pub: pubs[1], from: before[1] + 1, to: during[1], recvs: left},
	}
	cross, per, settleTime := settle(t, repairTimeout+10*time.Second, crossing...)
	logTallies(t, per)
	all, _, _ := settle(t, 5*time.Second,
		stream{pub: pubs[0], from: 1, to: during[0], recvs: others(nodes, pubs[0])},
		stream{pub: pubs[1], from: 1, to: during[1], recvs: others(nodes, pubs[1])})
	repaired, gapEvents, p50, p99, worst := repairStats(t, nodes...)
	r := fromTally("3 partition {h1,h2} vs {h3,h4}, heal", all)
	r.repaired = repaired
	r.detection = fmt.Sprintf("dead ≤ %s; alive again ≤ %s after heal", ms(max(deadL, deadR)), ms(aliveAll))
	r.repair = fmt.Sprintf("p50 ≤ %s, p99 ≤ %s, max %s", ms(p50), ms(p99), ms(worst))
	r.notes = fmt.Sprintf("2×%d published during the partition: %d repaired, %d flagged on the other side, settled %s after the heal was seen; %d Gap events",
		batch, cross.delivered, cross.flagged, ms(settleTime), gapEvents)
	record(t, r)
	if all.silent != 0 || all.wrong != 0 {
		t.Fatalf("silent misses across the partition: %v\n%s", all, diagnoseAll(nodes))
	}
	if cross.published != 2*batch*2 {
		t.Fatalf("the other side owed %d invalidations, want %d", cross.published, 2*batch*2)
	}
}
