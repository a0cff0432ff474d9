package engine

import (
	"net/netip"
	"testing"
	"time"

	"github.com/warpmesh/warpmesh/codec"
)

func capTable() *membership {
	cfg := &config{}
	cfg.SuspectAfter, cfg.DeadAfter = time.Second, 2*time.Second
	m := newMembership(1, cfg, newEventQueue())
	m.maxValid, m.maxPending = 512, 64 // the rules, not the production sizes
	return m
}

func phantom(i int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 7946)
}

// TestMemberCaps: forged identities fill only the unvalidated pool, which
// stays at its cap; one address holds one unvalidated member; a validated
// member survives the flood; a newcomer's RESPONSE gets it in whatever the
// flood did.
func TestMemberCaps(t *testing.T) {
	m := capTable()
	now := time.Now()
	m.validated(2, 1, phantom(0), phantom(0), 10, now)
	for i := 1; i <= 3*m.maxPending; i++ {
		m.heard(uint64(100+i), 1, 1, phantom(i), false, now.Add(time.Duration(i)))
	}
	var s Stats
	m.count(&s)
	if s.MembersUnvalidated != m.maxPending || s.MembersAlive != 1 {
		t.Fatalf("unvalidated %d (cap %d), alive %d", s.MembersUnvalidated, m.maxPending, s.MembersAlive)
	}
	for i := range 100 { // many ids, one address
		m.heard(uint64(1<<40+i), 1, 1, phantom(1<<20), false, now)
	}
	n := 0
	for _, e := range m.members {
		if e.Addr == phantom(1<<20) {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d unvalidated members at one address", n)
	}
	if !ok(m.validated(3, 1, phantom(1<<21), phantom(1<<21), 5, now)) {
		t.Fatal("a newcomer's RESPONSE did not validate it during the flood")
	}
	if got := len(m.snapshot()); got != 2 {
		t.Fatalf("snapshot has %d members, want the 2 validated", got)
	}
	if v := m.view.Load(); len(v.live) != 2 {
		t.Fatalf("fan-out view has %d addresses, want 2", len(v.live))
	}
}

func TestValidatedPoolEvictsGone(t *testing.T) {
	m := capTable()
	now := time.Now()
	for i := range m.maxValid {
		m.validated(uint64(10+i), 1, phantom(i), phantom(i), 1, now)
	}
	if ok(m.validated(5, 1, phantom(m.maxValid), phantom(m.maxValid), 1, now)) {
		t.Fatal("validated beyond MaxMembers with every member alive")
	}
	m.left(10, 1, now)
	if !ok(m.validated(5, 1, phantom(m.maxValid), phantom(m.maxValid), 1, now)) {
		t.Fatal("a departed member did not make room")
	}
	var s Stats
	m.count(&s)
	if s.MembersAlive != m.maxValid || s.MembersRefused != 1 || s.MembersEvicted != 1 {
		t.Fatalf("alive %d refused %d evicted %d", s.MembersAlive, s.MembersRefused, s.MembersEvicted)
	}
}

// TestAdmit: what reaches the replay window from a validated member.
func TestAdmit(t *testing.T) {
	m := capTable()
	now := time.Now()
	addr, other := phantom(1), phantom(2)
	m.validated(7, 5, addr, addr, 1000, now)
	hdr := func(typ codec.FrameType, epoch, packet uint64) *codec.Header {
		return &codec.Header{Type: typ, Origin: 7, Epoch: epoch, Packet: packet}
	}
	for _, tt := range []struct {
		name   string
		h      *codec.Header
		from   netip.AddrPort
		authed bool
		ok     bool
		why    DropReason
	}{
		{"heartbeat from its address", hdr(codec.TypeAlive, 5, 1001), addr, false, true, 0},
		{"huge packet from its address", hdr(codec.TypeAlive, 5, 1<<62), addr, false, false, DropImplausible},
		{"LEAVE from elsewhere", hdr(codec.TypeLeave, 5, 1002), other, false, false, DropForged},
		{"huge LEAVE from elsewhere", hdr(codec.TypeLeave, 5, 1<<62), other, false, false, DropImplausible},
		{"NACK from elsewhere, near", hdr(codec.TypeNack, 5, 1003), other, false, true, 0},
		{"NACK from elsewhere, a window ahead", hdr(codec.TypeNack, 5, 1001+windowSize), other, false, false, DropImplausible},
		{"new epoch", hdr(codec.TypeAlive, 6, 1), addr, false, false, DropUnvalidated},
		{"old epoch passes to the epoch check", hdr(codec.TypeAlive, 4, 1), addr, false, true, 0},
		{"authenticated LEAVE from elsewhere", hdr(codec.TypeLeave, 5, 1004), other, true, true, 0},
		{"LEAVE replay below the last trusted packet", hdr(codec.TypeLeave, 5, 1003), addr, false, false, DropForged},
	} {
		ok, why, _ := m.admit(tt.h, nil, tt.from, tt.authed, now)
		if ok != tt.ok || why != tt.why {
			t.Errorf("%s: admit = %v, %v; want %v, %v", tt.name, ok, why, tt.ok, tt.why)
		}
	}
}

// TestLiveMemberDoesNotMove: a RESPONSE claiming a live member's id from
// another address (any epoch) is refused; once the member has gone silent
// the move is taken.
func TestLiveMemberDoesNotMove(t *testing.T) {
	m := capTable()
	now := time.Now()
	addr, other := phantom(1), phantom(2)
	m.validated(7, 5, addr, addr, 10, now)
	if ok(m.validated(7, 5, other, other, 11, now)) || ok(m.validated(7, 6, other, other, 1, now)) {
		t.Fatal("a live member moved on a RESPONSE from elsewhere")
	}
	if a, _ := m.validatedAddr(7); a != addr {
		t.Fatalf("member at %v, want %v", a, addr)
	}
	m.tick(now.Add(m.cfg.SuspectAfter))
	if !ok(m.validated(7, 6, other, other, 1, now.Add(m.cfg.SuspectAfter))) {
		t.Fatal("a silent member's restart elsewhere was refused")
	}
	if a, _ := m.validatedAddr(7); a != other {
		t.Fatalf("member at %v, want %v", a, other)
	}
}

// ok is the first of two results.
func ok(a, _ bool) bool { return a }
