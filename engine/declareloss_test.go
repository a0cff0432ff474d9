package engine

import (
	"testing"
	"time"
)

// DeclareLoss makes every member raise a Gap for the declaring origin, both
// when the skipped sequence is the last thing sent (noticed from the HWM
// announcement) and when more data follows it; what was published around
// it is still delivered.
func TestDeclareLossRaisesGapEverywhere(t *testing.T) {
	ports := freePorts(t, 3)
	a := startNode(t, unicastOptions(ports[0]))
	b := startNode(t, unicastOptions(ports[1], ports[0]))
	c := startNode(t, unicastOptions(ports[2], ports[0]))
	waitFor(t, 5*time.Second, "three alive members", func() bool {
		return aliveCount(a) == 2 && aliveCount(b) == 2 && aliveCount(c) == 2
	})
	kb, kc := newKeyLog(b), newKeyLog(c)
	gaps := func(n *Node) uint64 {
		s := n.Stats()
		return s.GapsGivenUp[GapEvicted]
	}
	if err := a.Invalidate("before"); err != nil {
		t.Fatal(err)
	}
	if err := a.DeclareLoss(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "a Gap on b and c after a trailing skip", func() bool {
		return gaps(b) >= 1 && gaps(c) >= 1
	})
	if err := a.DeclareLoss(); err != nil {
		t.Fatal(err)
	}
	if err := a.Invalidate("after"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "a second Gap on b and c, and both keys", func() bool {
		return gaps(b) >= 2 && gaps(c) >= 2 && kb.count("after") == 1 && kc.count("after") == 1
	})
	if kb.count("before") != 1 || kc.count("before") != 1 {
		t.Fatalf("before: b %d, c %d deliveries, want 1 each", kb.count("before"), kc.count("before"))
	}
	if g := gaps(a); g != 0 {
		t.Fatalf("the declaring node raised %d gaps itself", g)
	}
	a.Close()
	if err := a.DeclareLoss(); err == nil {
		t.Fatal("DeclareLoss after Close returned nil")
	}
}
