package cluster

import (
	"fmt"
	"testing"
	"time"
)

// TestLoss drops 5% of the datagrams every host receives (nftables
// numgen random) while two publishers send 100k invalidations each as
// fast as they can: every invalidation must be applied at every other
// host or covered by a Gap event there.
func TestLoss(t *testing.T) {
	needCluster(t)
	needNft(t)
	const (
		lossPct = 5
		perPub  = 100_000
	)
	m := newMesh(t, 4)
	var nodes []*node
	for _, h := range m.hosts {
		nodes = append(nodes, h.start(nodeConfig{}))
	}
	waitMembers(t, 10*time.Second, nodes...)
	for _, h := range m.hosts {
		h.setLoss(lossPct)
	}
	pubs := nodes[:2]
	start := time.Now()
	var wants []int
	for _, p := range pubs {
		wants = append(wants, p.startPublish(t, perPub, 0))
	}
	var streams []stream
	for i, p := range pubs {
		to := p.awaitPublished(t, wants[i], 60*time.Second)
		var recvs []*node
		for _, r := range nodes {
			if r != p {
				recvs = append(recvs, r)
			}
		}
		streams = append(streams, stream{pub: p, from: 1, to: to, recvs: recvs})
	}
	sendTime := time.Since(start)
	total, per, settleTime := settle(t, repairTimeout+15*time.Second, streams...)
	logTallies(t, per)
	repaired, gapEvents, p50, p99, worst := repairStats(t, nodes...)
	frames := streams[0].to + streams[1].to
	r := fromTally("2 loss 5% at every host, 2 publishers × 100k", total)
	r.repaired = repaired
	r.detection = "-"
	r.repair = fmt.Sprintf("p50 ≤ %s, p99 ≤ %s, max %s", ms(p50), ms(p99), ms(worst))
	r.notes = fmt.Sprintf("%d frames published in %s; all settled %s later; %d Gap events", frames, ms(sendTime), ms(settleTime), gapEvents)
	record(t, r)
	if total.silent != 0 || total.wrong != 0 {
		t.Fatalf("silent misses under %d%% loss: %v\n%s", lossPct, total, diagnoseAll(nodes))
	}
	if total.published != 2*perPub*3 {
		t.Fatalf("publishers echoed %d invalidations owed to 3 receivers each, want %d", total.published, 2*perPub*3)
	}
	if repaired == 0 {
		t.Fatalf("no frame was repaired under %d%% loss: the loss filter is not working", lossPct)
	}
}
