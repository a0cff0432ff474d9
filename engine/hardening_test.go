package engine

import (
	"testing"
	"time"

	"github.com/warpmesh/warpmesh/codec"
)

// The rules below close holes a review of the lease, vouching and SWIM
// changes found; each test fails on the code before its fix.

// TestVouchRefusesOwnAndLiveAddress: a second-hand word never puts a
// member at our own address (a restart with a new id: others still list
// the old one) nor at one a live member answers from.
func TestVouchRefusesOwnAndLiveAddress(t *testing.T) {
	m := capTable()
	m.cfg.advertise = phantom(9)
	now := time.Now()
	own := codec.DigestEntry{ID: 90, Epoch: 1, Addr: phantom(9), State: StateAlive}
	if _, ch := m.gossip(&own, 1, 0, true, now); ch != phantom(9) {
		t.Fatalf("our own former self: challenge %v, want our address (not vouched)", ch)
	}
	m.validated(2, 1, phantom(2), phantom(2), 10, now)
	other := codec.DigestEntry{ID: 20, Epoch: 1, Addr: phantom(2), State: StateAlive}
	m.gossip(&other, 1, 0, true, now)
	var s Stats
	m.count(&s)
	if s.Vouched != 0 || s.MembersAlive != 1 || s.MembersLeft != 0 {
		t.Fatalf("vouched %d, alive %d, left %d: want the live member kept and nobody vouched", s.Vouched, s.MembersAlive, s.MembersLeft)
	}
}

// TestLateTicksStillDetectDeath: ticks that come late again and again
// leave out only the stalls themselves, so a crashed member is still
// declared dead and given up by the lease.
func TestLateTicksStillDetectDeath(t *testing.T) {
	m := capTable()
	m.cfg.Heartbeat, m.cfg.RepairTimeout = 100*time.Millisecond, 500*time.Millisecond
	t0 := time.Now()
	m.validated(2, 1, phantom(2), phantom(2), 10, t0)
	late := max(m.cfg.SuspectAfter/4, 2*tickInterval(m.cfg)) // every tick exactly this late
	at := t0
	for ; at.Sub(t0) < m.cfg.DeadAfter+m.cfg.RepairTimeout+10*late; at = at.Add(late) {
		m.tick(at)
	}
	m.mu.Lock()
	st := m.members[2].State
	m.mu.Unlock()
	if st != StateDead {
		t.Fatalf("member silent %v (DeadAfter %v) with every tick late is %v, want dead", at.Sub(t0), m.cfg.DeadAfter, st)
	}
	if !m.lease.expiredAt(at) {
		t.Fatal("a node whose ticks all come late vouched for news read just after a stall")
	}
	// Ticks on time again: the member, silent past DeadAfter +
	// RepairTimeout with the stalls left out, no longer holds the lease.
	for end := at.Add(m.cfg.Heartbeat + 2*tickInterval(m.cfg)); at.Before(end); at = at.Add(tickInterval(m.cfg)) {
		m.tick(at)
	}
	if m.lease.expiredAt(at) {
		t.Fatal("a member silent past DeadAfter + RepairTimeout, stalls left out, still holds the lease")
	}
}

// TestVouchedGrace: for a Heartbeat after the vouch, a vouched member's
// authenticated frames raise its packet baseline (a replayed old capture
// first cannot pin it low), vouch for nobody, and neither a LEAVE nor a
// plaintext frame is taken; afterwards the plausibility window holds.
func TestVouchedGrace(t *testing.T) {
	m := capTable()
	m.cfg.Heartbeat = time.Second
	now := time.Now()
	d := codec.DigestEntry{ID: 7, Epoch: 3, Addr: phantom(7), State: StateAlive}
	m.gossip(&d, 1, 0, true, now)
	old := codec.Header{Type: codec.TypeAlive, Origin: 7, Epoch: 3, Packet: 1000, Flags: codec.FlagAuth}
	if ok, _, _ := m.admit(&old, nil, phantom(7), true, now); !ok {
		t.Fatal("first authenticated frame refused")
	}
	if m.vouches(&old) {
		t.Fatal("a vouched member's frame in its grace vouches for others")
	}
	plain := codec.Header{Type: codec.TypeAlive, Origin: 7, Epoch: 3, Packet: 1 << 62}
	if ok, _, _ := m.admit(&plain, nil, phantom(7), false, now); ok {
		t.Fatal("a plaintext frame was taken in the grace")
	}
	leave := codec.Header{Type: codec.TypeLeave, Origin: 7, Epoch: 3, Packet: 2000, Flags: codec.FlagAuth}
	if ok, _, _ := m.admit(&leave, nil, phantom(7), true, now); ok {
		t.Fatal("a LEAVE was taken in the grace")
	}
	real := codec.Header{Type: codec.TypeAlive, Origin: 7, Epoch: 3, Packet: 1000 + 1<<28, Flags: codec.FlagAuth}
	if ok, why, _ := m.admit(&real, nil, phantom(7), true, now.Add(500*time.Millisecond)); !ok {
		t.Fatalf("the member's real frame after a replayed old one: %v", why)
	}
	after := now.Add(2 * time.Second)
	next := real
	next.Packet++
	if ok, _, _ := m.admit(&next, nil, phantom(7), true, after); !ok || !m.vouches(&next) {
		t.Fatal("after the grace the member's newest frame is not taken or does not vouch")
	}
	far := next
	far.Packet += 1 << 40
	if ok, _, _ := m.admit(&far, nil, phantom(7), true, after); ok {
		t.Fatal("after the grace a packet 2^40 ahead was taken")
	}
}

// TestSwimLeaveKeepsDeadSilent: going back to heartbeats restarts the
// silence clock of live members only; members dead for long stay given
// up by the lease.
func TestSwimLeaveKeepsDeadSilent(t *testing.T) {
	m := capTable()
	m.cfg.DirectLimit, m.cfg.Heartbeat, m.cfg.RepairTimeout = 2, 100*time.Millisecond, 500*time.Millisecond
	t0 := time.Now()
	for i := 2; i <= 5; i++ {
		m.validated(uint64(i), 1, phantom(i), phantom(i), 10, t0)
	}
	m.mu.Lock()
	m.swimModeLocked(4, 0, t0)
	if m.swim == nil {
		m.mu.Unlock()
		t.Fatal("4 live members over a DirectLimit of 2: no SWIM")
	}
	later := t0.Add(time.Minute)
	for i := 3; i <= 5; i++ { // crashed long ago
		e := m.members[uint64(i)]
		e.State, e.stateSince = StateDead, t0
		m.syncLocked(e)
	}
	m.swimModeLocked(1, 0, later)
	left := m.swim == nil
	// A SuspectAfter on, member 2 has been heard again; the dead have not.
	check := later.Add(m.cfg.SuspectAfter + time.Millisecond)
	m.members[2].LastHeard = check
	m.leaseLocked(check)
	m.mu.Unlock()
	if !left {
		t.Fatal("1 live member: still in SWIM")
	}
	if m.lease.expiredAt(check) {
		t.Fatal("after leaving SWIM, members dead for a minute hold the lease again")
	}
}

// TestStrangersDoNotSwitchMode: unvalidated entries created by strangers'
// own ALIVEs (forgeable in plaintext) do not switch the mode to SWIM —
// which would turn the news lease off; entries a validated member named
// do. Nor does one member's probing alone: two must probe us.
func TestStrangersDoNotSwitchMode(t *testing.T) {
	m := capTable()
	m.cfg.DirectLimit, m.cfg.Heartbeat = 4, 100*time.Millisecond
	now := time.Now()
	m.validated(2, 1, phantom(2), phantom(2), 10, now)
	for i := 100; i < 140; i++ {
		m.heard(uint64(i), 1, 1, phantom(i), false, now)
	}
	if m.swimming() {
		t.Fatal("40 strangers' ALIVEs switched the mode to SWIM")
	}
	for range 5 {
		m.touch(2, now, true)
	}
	m.tick(now)
	if m.swimming() {
		t.Fatal("one member's pings alone switched the mode to SWIM")
	}
	m.validated(3, 1, phantom(3), phantom(3), 10, now)
	m.touch(3, now, true)
	m.tick(now)
	if !m.swimming() {
		t.Fatal("pinged by two members: not in SWIM")
	}

	n := capTable()
	n.cfg.DirectLimit = 4
	n.validated(2, 1, phantom(2), phantom(2), 10, now)
	for i := 200; i < 210; i++ {
		d := codec.DigestEntry{ID: uint64(i), Epoch: 1, Addr: phantom(i), State: StateAlive}
		n.gossip(&d, 1, 0, false, now) // plaintext: pending, named by member 2
	}
	if !n.swimming() {
		t.Fatal("10 members named by a validated member: not in SWIM")
	}
}
