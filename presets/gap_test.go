package presets

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/warpmesh/warpmesh/engine"
	"github.com/warpmesh/warpmesh/engine/memnet"
)

// A Gap the engine raises itself, not one handed to onEvent, flushes the
// cache: the origin's frames to this node are lost for longer than its
// retransmit ring reaches back, the loss is noticed when the link is back,
// the origin answers "unavailable", and the receiver gives the range up.
func TestRealGapFlushesCache(t *testing.T) {
	net := memnet.New(7)
	t.Cleanup(func() { net.Close() })
	addrA, addrB := netip.MustParseAddrPort("10.0.0.1:7946"), netip.MustParseAddrPort("10.0.0.2:7946")
	mk := func(addr netip.AddrPort, seeds ...string) *Cache[int] {
		ep, err := net.Listen(addr)
		if err != nil {
			t.Fatal(err)
		}
		c, err := NewMeshEventual[int](engine.Options{
			Transport:        ep,
			Peers:            seeds,
			Cluster:          "gap-test",
			Logger:           quietLogger,
			Heartbeat:        20 * time.Millisecond,
			SuspectAfter:     5 * time.Second, // the cut must not kill the origin
			DeadAfter:        10 * time.Second,
			RetransmitBuffer: 64 << 10, // ~46 frames
			FlowWindow:       -1,       // the cut receiver sends no ACKs
			RepairTimeout:    time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	a := mk(addrA)
	b := mk(addrB, addrA.String())
	waitFor(t, 5*time.Second, "join", func() bool { return aliveCount(a.Node()) == 1 && aliveCount(b.Node()) == 1 })
	if err := b.Set("held", 1); err != nil {
		t.Fatal(err)
	}
	if err := net.SetLoss(addrA, addrB, 1); err != nil {
		t.Fatal(err)
	}
	const total = 60000 // ~600 frames, far past the ring
	for i := range total {
		if err := a.Delete(fmt.Sprintf("k%06d", i)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "the origin's frames lost", func() bool {
		return a.Node().Stats().RecordsSent >= total && net.Stats().Drops[memnet.DropLoss] >= 400
	})
	if err := net.SetLoss(addrA, addrB, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "a Gap and the flush", func() bool { return b.Stats().Flushes >= 1 })
	if s := b.Node().Stats(); s.GapEvents() == 0 {
		t.Fatal("cache flushed without a Gap event")
	}
	if _, ok := b.Get("held"); ok || b.Len() != 0 {
		t.Fatalf("after the Gap: held present %v, %d entries", ok, b.Len())
	}
	// The mesh goes on: a new invalidation after the gap is applied.
	b.Set("after", 1)
	waitFor(t, 5*time.Second, "b's set to reach a", func() bool { return a.Stats().RemoteInvalidations >= 1 })
	before := b.Stats().RemoteInvalidations
	a.Delete("after")
	waitFor(t, 5*time.Second, "delivery after the gap", func() bool { return b.Stats().RemoteInvalidations > before })
	if _, ok := b.Get("after"); ok {
		t.Fatal("an invalidation after the gap did not delete the entry")
	}
}
