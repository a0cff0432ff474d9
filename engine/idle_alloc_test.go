package engine

import (
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

// TestIdleHeartbeatsZeroAlloc: an idle mesh allocates nothing in steady
// state. The heartbeat loop once consumed its message slice while
// writing it, leaving it no capacity, so every round allocated a new one:
// ~40 objects a second for an idle pair of nodes, enough to push a busy
// CI machine's publish-to-apply gates over their limit. The gate allows
// one object per 10 heartbeat rounds (the runtime's own, if any).
func TestIdleHeartbeatsZeroAlloc(t *testing.T) {
	ports := freePorts(t, 2)
	a := startNode(t, unicastOptions(ports[0]))
	b := startNode(t, unicastOptions(ports[1], ports[0]))
	waitFor(t, 5*time.Second, "the pair to meet and be ready", func() bool {
		return aliveCount(a) == 1 && aliveCount(b) == 1 && a.Ready() && b.Ready()
	})
	sent := func() uint64 { return a.ctr.heartbeatsSent.Load() + b.ctr.heartbeatsSent.Load() } // Stats and waitFor allocate
	for settle := sent() + 20; sent() < settle; {
		time.Sleep(5 * time.Millisecond) // past the start-up's one-off work (validation, JOIN, first tables)
	}
	h0 := sent()
	gc := debug.SetGCPercent(-1)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	before := ms.Mallocs
	for deadline := time.Now().Add(10 * time.Second); sent() < h0+40 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond) // polling a counter with a deadline; the rounds are the measurement
	}
	runtime.ReadMemStats(&ms)
	debug.SetGCPercent(gc)
	rounds := sent() - h0
	if rounds < 40 {
		t.Fatalf("only %d heartbeat rounds in 10 s", rounds)
	}
	if objs := ms.Mallocs - before; objs*10 > rounds {
		t.Fatalf("idle pair: %d heap objects in %d heartbeat rounds (gate: one per 10)", objs, rounds)
	}
}
