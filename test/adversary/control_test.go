package adversary

import (
	"math"
	"testing"
	"time"

	"github.com/warpmesh/warpmesh/codec"
)

// TestForgedLeave: LEAVEs naming a real member, from the attacker's
// address, with a huge and with a plausible packet number. The member must
// stay, and its later heartbeats and invalidations must still be taken.
func TestForgedLeave(t *testing.T) {
	tg := startNode(t, nil, nil)
	legit := startNode(t, []string{tg.Addr().String()}, nil)
	waitFor(t, 10*time.Second, "member to join", func() bool { return tg.member(legit.ID()) && legit.member(tg.ID()) })
	a := newAttacker(t)
	for _, packet := range []uint64{math.MaxUint64 >> 1, 1 << 20, 2} {
		h := a.header(codec.TypeLeave, legit.ID(), legit.Epoch())
		h.Packet = packet
		a.send(tg.Addr(), a.leave(h, 1))
	}
	// Over ten heartbeats the member must never leave the table.
	deadline := time.Now().Add(10 * testHeartbeat)
	for time.Now().Before(deadline) {
		if !tg.member(legit.ID()) {
			t.Fatalf("forged LEAVE took the member out")
		}
		time.Sleep(time.Millisecond) // sampling interval
	}
	hb := tg.Stats().HeartbeatsReceived
	waitFor(t, 5*time.Second, "a later heartbeat", func() bool { return tg.Stats().HeartbeatsReceived > hb+2 })
	if err := legit.Invalidate("after-leave"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "member's invalidation after the forged LEAVE", func() bool { _, ok := tg.appliedAt("after-leave"); return ok })
	t.Logf("figure: forged LEAVE: member stayed alive over %v; drops %v", 10*testHeartbeat, tg.Stats().Drops)
}
