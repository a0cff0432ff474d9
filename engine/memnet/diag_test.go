package memnet_test

import (
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/warpmesh/warpmesh/engine"
)

func TestDiagLarge(t *testing.T) {
	n := newNet(t, 30)
	size, _ := strconv.Atoi(os.Getenv("DIAG_N"))
	hb, _ := time.ParseDuration(os.Getenv("DIAG_HB"))
	t0 := time.Now()
	nodes := startMesh(t, n, size, []int{0, 1}, func(i int) engine.Options {
		return engine.Options{Heartbeat: hb, SuspectAfter: 5 * hb, DeadAfter: 10 * hb, DirectLimit: 8, Fanout: 3, BatchSize: 8, PublishRing: 1 << 14, RetransmitBuffer: 64 << 10}
	})
	for s := 0; s < 30; s++ {
		time.Sleep(time.Second)
		mn, mx, sum := 1<<30, 0, 0
		var st [5]int
		for _, node := range nodes {
			c := aliveCount(node)
			mn, mx, sum = min(mn, c), max(mx, c), sum+c
			for _, m := range node.Members() {
				st[m.State]++
			}
		}
		ns := n.Stats()
		t.Logf("t=%v alive min %d max %d avg %d states %v net sent %d drops %v", time.Since(t0).Round(time.Millisecond), mn, mx, sum/size, st, ns.Sent, ns.Drops)
		if mn == size-1 {
			break
		}
	}
}
