package adversary

import (
	"math"
	"net"
	"net/netip"
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

// TestHijack: the attacker claims a live member's id at its own address,
// in the member's epoch and in a later one, and answers the challenges
// that follow as that id. The member must stay where it is and keep
// receiving.
func TestHijack(t *testing.T) {
	tg := startNode(t, nil, nil)
	legit := startNode(t, []string{tg.Addr().String()}, nil)
	waitFor(t, 10*time.Second, "member to join", func() bool { return tg.member(legit.ID()) && legit.member(tg.ID()) })
	a := newAttacker(t)
	for _, epoch := range []uint64{legit.Epoch(), legit.Epoch() + 1} {
		a.as.Store(&[2]uint64{legit.ID(), epoch})
		v := tg.Stats().Validations
		h := a.header(codec.TypeAlive, legit.ID(), epoch)
		h.Packet = legit.Stats().FramesSent + 100
		a.send(tg.Addr(), a.alive(h, netip.AddrPort{}, nil))
		waitFor(t, 5*time.Second, "the attacker's RESPONSE", func() bool { return tg.Stats().Validations > v })
		observe(30 * time.Millisecond) // past challengeRetry: the next claim is challenged too
	}
	deadline := time.Now().Add(10 * testHeartbeat)
	for time.Now().Before(deadline) {
		for _, m := range tg.Members() {
			if m.ID == legit.ID() && m.Addr != legit.Addr() {
				t.Fatalf("member moved to %v (attacker %v)", m.Addr, a.conn.LocalAddr())
			}
		}
		time.Sleep(time.Millisecond) // sampling interval
	}
	if err := tg.Invalidate("to-the-real-one"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "invalidation at the real member", func() bool { _, ok := legit.appliedAt("to-the-real-one"); return ok })
	s := tg.Stats()
	t.Logf("figure: hijack: member stayed at its address over %v; challenges %d, validations %d, refused %d, attacker received %d B",
		10*testHeartbeat, s.ChallengesSent, s.Validations, s.MembersRefused, a.recv.Load())
	if s.MembersRefused != 2 {
		t.Errorf("%d claims refused, want both", s.MembersRefused)
	}
}

// TestReassignedAddress: a member dies and its address goes to a process
// that is not a node. What the node keeps sending there until it forgets
// the member is measured (the first row of the issue: heartbeats to dead
// members until they are reaped).
func TestReassignedAddress(t *testing.T) {
	tg := startNode(t, nil, nil)
	legit := startNode(t, []string{tg.Addr().String()}, nil)
	waitFor(t, 10*time.Second, "member to join", func() bool { return tg.member(legit.ID()) && legit.member(tg.ID()) })
	addr := legit.Addr()
	legit.Abort()
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(addr))
	if err != nil {
		t.Skipf("the dead member's port was taken meanwhile: %v", err)
	}
	v := &victim{conn: c, addr: addr}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			v.bytes.Add(uint64(n))
			v.datagrams.Add(1)
		}
	}()
	defer func() { c.Close(); <-done }()
	window := 60 * testHeartbeat // the member is dead after 6, reaped after 60
	observe(window)
	t.Logf("figure: reassigned address: %d B in %d datagrams over %v (heartbeat %v) to a dead member's old address",
		v.bytes.Load(), v.datagrams.Load(), window, testHeartbeat)
	// Heartbeats until it is declared dead (DeadAfter = 6 heartbeats, two
	// more if the loops run late), then 100-byte challenges: every round
	// for 8 rounds, then every 4th. tg hears no other member, so it does
	// not forget its dead one (an isolated node may be the one cut off:
	// members.go tick) and the trickle goes on at one challenge per 4
	// rounds; over the window that is at most 8+8+60/4, plus rounds that
	// ran late on a loaded machine.
	if d, bound := v.datagrams.Load(), uint64(8+8+60/4+6); d > bound {
		t.Errorf("%d datagrams to a dead member's address over %v, bound %d", d, window, bound)
	}
}
