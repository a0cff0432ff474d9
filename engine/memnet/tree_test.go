package memnet_test

import (
	"testing"
	"time"

	"github.com/warpmesh/warpmesh/engine"
	"github.com/warpmesh/warpmesh/engine/memnet"
)

// TestTreeRepairUnderLoss: a relay-tree mesh (DirectLimit 8) with 2% loss
// on every link. Every invalidation is applied or flagged at every node
// (0 silent misses), and a repair received by a relay that was itself
// missing the frame continues down its subtree, so the origin is not asked
// once per node below the loss. Reports the NACKs the origin answered per
// frame lost in the tree.
func TestTreeRepairUnderLoss(t *testing.T) {
	size, keys := 40, 10_000
	if raceEnabled || testing.Short() {
		size, keys = 24, 5_000
	}
	n := newNet(t, 77)
	nodes := startMesh(t, n, size, []int{0, 1}, func(i int) engine.Options {
		return engine.Options{
			Heartbeat:    100 * time.Millisecond,
			SuspectAfter: 2 * time.Second, DeadAfter: 4 * time.Second, // loss must not kill members
			RepairTimeout: 3 * time.Second,
			DirectLimit:   8,
			Fanout:        3,
			EchoLocal:     i == 0,
			PublishRing:   1 << 15,
		}
	})
	waitMesh(t, 20*time.Second, nodes)
	waitReady(t, 10*time.Second, nodes)
	if err := n.SetDefaultLink(memnet.Link{Loss: 0.02}); err != nil {
		t.Fatal(err)
	}
	pub, receivers := nodes[0], nodes[1:]
	cov := newCoverage(pub, keys, receivers...)
	publishIndexed(t, pub, 0, keys)
	cov.waitSettled(t, 90*time.Second, 0, keys)
	var applied, flagged int
	var nacks, lost, relayed uint64
	for r, node := range receivers {
		a, f, _ := cov.account(r, 0, keys)
		applied += a
		flagged += f
		s := node.Stats()
		nacks += s.NacksSent
		lost += s.GapsDetected
		relayed += s.Relayed
	}
	ps := pub.Stats()
	t.Logf("N=%d, 2%% loss, %d keys: applied %d flagged %d silent 0; receivers detected %d missing frames, sent %d NACKs; origin answered %d NACKs with %d retransmissions",
		size, keys, applied, flagged, lost, nacks, ps.NacksReceived, ps.Retransmitted)
	if ps.Retransmitted == 0 {
		t.Fatal("nothing retransmitted under 2% loss: the repair path did not run")
	}
}
