package adversary

import (
	"testing"
	"time"

	"github.com/warpmesh/warpmesh/codec"
	"github.com/warpmesh/warpmesh/engine"
)

// originFlood sends one frame from each of origins distinct forged origins
// (build makes it), then has a newcomer join and publish.
func originFlood(t *testing.T, origins int, build func(a *attacker, origin uint64) []byte) {
	tg := startNode(t, nil, nil)
	a := newAttacker(t)
	heap0 := heapMB()
	for i := range origins {
		a.send(tg.Addr(), build(a, randID()))
		if i%512 == 0 {
			waitFor(t, 30*time.Second, "node to keep up", func() bool { return tg.Stats().FramesReceived >= uint64(i)*9/10 })
		}
	}
	waitFor(t, 30*time.Second, "every frame handled", func() bool { return tg.Stats().FramesReceived >= uint64(origins)*9/10 })
	join, apply := joinAndApply(t, tg, "after-origins")
	heap1 := heapMB()
	s := tg.Stats()
	t.Logf("figure: origin flood: %d origins (%d B): heap %.1f → %.1f MiB; newcomer joined in %v, applied in %v; drops unknown_member %d too_many_origins %d",
		origins, a.sent.Load(), heap0, heap1, join, apply, s.Drops[engine.DropUnknownMember], s.Drops[engine.DropTooManyOrigins])
	// The bound is the normal build's (SECURITY.md: joined in 250 ms);
	// under the race detector the join after 20,000 forged origins took
	// 0.49-0.87 s on a quiet machine, at 3bc4f64 as now, and 1.16 s in a
	// loaded CI run.
	bound := time.Second
	if raceEnabled {
		bound = 3 * time.Second
	}
	if join > bound || apply > bound {
		t.Errorf("newcomer joined in %v, invalidation applied in %v (bound %v each)", join, apply, bound)
	}
	if heap1-heap0 > 64 {
		t.Errorf("heap grew %.1f MiB under the origin flood (bound 64)", heap1-heap0)
	}
}

// TestOriginFloodHWM: HWM frames from 65,536 distinct origins (the issue's
// row). Control frames of origins that are not validated members create
// no per-origin state.
func TestOriginFloodHWM(t *testing.T) {
	originFlood(t, pick(20000, 65536), func(a *attacker, origin uint64) []byte {
		h := a.header(codec.TypeHWM, origin, 1)
		h.Seq = 10
		return codec.AppendHeader(a.buf[:0], &h)
	})
}

// TestOriginFloodData: DATA frames from distinct origins, each opening a
// gap. Stranger origins hold at most 256 receive states (engine/stream.go,
// stateFor), the oldest evicted first.
func TestOriginFloodData(t *testing.T) {
	originFlood(t, pick(20000, 65536), func(a *attacker, origin uint64) []byte {
		h := a.header(codec.TypeData, origin, 1)
		h.Seq, h.Count = 5, 1 // a gap of 4 below it
		b := codec.AppendHeader(a.buf[:0], &h)
		b = codec.AppendRecord(b, []byte("k"), codec.RecordExact)
		if err := codec.FinishFrame(b, 1); err != nil {
			t.Fatal(err)
		}
		return b
	})
}
