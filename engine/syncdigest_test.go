package engine

import (
	"testing"
	"time"
)

// TestPeriodicPushPullSendsDigests: once its join push-pull is done, a
// node in SWIM mode begins every periodic push-pull with a summary of its
// table; between nodes whose tables agree that is all that is sent (the
// digests match), and a node that joins later is still learned by all.
func TestPeriodicPushPullSendsDigests(t *testing.T) {
	const size = 6
	ports := freePorts(t, size+1)
	key := testKey(3)
	nodes := make([]*Node, 0, size+1)
	start := func(i int) {
		o := keyedOptions(t, ports[i], key, ports[0])
		o.DirectLimit = 2 // SWIM from 3 members on
		nodes = append(nodes, startNode(t, o))
	}
	for i := range size {
		start(i)
	}
	all := func(want int) func() bool {
		return func() bool {
			for _, n := range nodes {
				if aliveCount(n) != want {
					return false
				}
			}
			return true
		}
	}
	waitFor(t, 20*time.Second, "every node to list every other", all(size-1))
	agreed := func() (sent, agreed uint64) {
		for _, n := range nodes {
			s := n.Stats()
			sent, agreed = sent+s.SyncDigestsSent, agreed+s.SyncDigestsAgreed
		}
		return
	}
	waitFor(t, 20*time.Second, "a periodic push-pull between agreeing tables to end at the digest", func() bool {
		_, a := agreed()
		return a > 0
	})
	if s, a := agreed(); a > s {
		t.Fatalf("%d digests agreed, more than the %d sent", a, s)
	}
	start(size)
	waitFor(t, 20*time.Second, "the late joiner to be listed by all and to list all", all(size))
}
