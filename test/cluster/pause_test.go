package cluster

import (
	"fmt"
	"syscall"
	"testing"
	"time"
)

// TestPause stops one node with SIGSTOP until the others declare it dead
// and the publisher has sent far more frames than its retransmit ring
// holds (and than the paused node's socket buffer can queue), then resumes
// it: the node must raise a Gap event for what it cannot get back, account
// for every invalidation (applied or flagged), and receive what comes next.
func TestPause(t *testing.T) {
	needCluster(t)
	const (
		batch      = 20_000   // about 400 frames
		ringBytes  = 32 << 10 // publisher keeps ~32 frames for retransmission
		recvBuffer = 64 << 10 // the paused node's kernel queue holds few frames
		after      = 2000     // published after the resume
	)
	m := newMesh(t, 4)
	var nodes []*node
	for i, h := range m.hosts {
		cfg := nodeConfig{retransmitBuffer: ringBytes}
		if i == 3 {
			cfg.recvBuffer = recvBuffer
		}
		nodes = append(nodes, h.start(cfg))
	}
	waitMembers(t, 10*time.Second, nodes...)
	pub, paused := nodes[0], nodes[3]
	pub.publish(t, 1000, 0)

	stopped := time.Now()
	paused.signal(t, syscall.SIGSTOP)
	resumedOnce := false
	t.Cleanup(func() {
		if !resumedOnce {
			_ = paused.cmd.Process.Signal(syscall.SIGCONT) // let cleanup kill it normally
		}
	})
	_, dead := waitEvents(t, 5*time.Second, "dead", stopped, nodes[:3], []*node{paused})
	during := pub.publish(t, batch, 0)

	resumed := time.Now()
	paused.signal(t, syscall.SIGCONT)
	resumedOnce = true
	t.Logf("paused %v (declared dead after ≤ %v), %d frames published meanwhile", resumed.Sub(stopped), dead, during)
	waitFor(t, "the resumed node flags a Gap from the publisher", repairTimeout+5*time.Second, func() bool {
		return len(paused.gapsFrom(pub.id)) > 0
	}, paused.diagnose)
	gaps := paused.gapsFrom(pub.id)
	flaggedAfter := gaps[0].at.Sub(resumed)
	_, back := waitEvents(t, 5*time.Second, "join", resumed, nodes[:3], []*node{paused})
	waitMembers(t, 5*time.Second, nodes...)

	last := pub.publish(t, after, 0)
	total, per, _ := settle(t, repairTimeout+5*time.Second, stream{pub: pub, from: 1, to: last, recvs: others(nodes, pub)})
	logTallies(t, per)
	for _, g := range gaps {
		t.Logf("gap at %s: seqs %d..%d (%d missing) reason %s, %v after SIGCONT", paused.label, g.first, g.last, g.missing, g.reason, g.at.Sub(resumed))
	}
	newOnes, _, _ := settle(t, time.Second, stream{pub: pub, from: during + 1, to: last, recvs: []*node{paused}})
	repaired, gapEvents, p50, p99, worst := repairStats(t, nodes...)
	r := fromTally("6 SIGSTOP one node past the retransmit ring", total)
	r.repaired = repaired
	r.detection = fmt.Sprintf("dead ≤ %s after SIGSTOP; Gap %s and alive ≤ %s after SIGCONT", ms(dead), ms(flaggedAfter), ms(back))
	r.repair = repairText(repaired, p50, p99, worst)
	r.notes = fmt.Sprintf("RetransmitBuffer %d KiB, paused node RecvBuffer %d KiB; %d Gap events (first: %s, %d frames); after the resume: %v",
		ringBytes>>10, recvBuffer>>10, gapEvents, gaps[0].reason, gaps[0].missing, newOnes)
	record(t, r)
	if total.silent != 0 || total.wrong != 0 {
		t.Fatalf("silent misses: %v\n%s", total, diagnoseAll(nodes))
	}
	if got := per[paused.label]; got.flagged == 0 {
		t.Fatalf("the paused node flagged nothing: %v", got)
	}
	if newOnes.delivered != newOnes.published || newOnes.published != after {
		t.Fatalf("after the resume the paused node got %v, want all %d delivered", newOnes, after)
	}
	for _, n := range nodes[1:3] {
		if got := per[n.label]; got.flagged != 0 {
			t.Errorf("%s never paused but flagged %d invalidations", n.label, got.flagged)
		}
	}
}
