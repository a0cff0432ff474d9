package engine

import (
	"testing"
	"time"
)

// TestLeaseRules: the news lease counts every validated member that has not
// left and has been silent for less than DeadAfter + RepairTimeout, each
// vouched for until its news (heartbeat or challenge) + SuspectAfter; it
// never runs out with no member to count, nor in SWIM mode.
func TestLeaseRules(t *testing.T) {
	m := capTable()
	m.cfg.RepairTimeout = 500 * time.Millisecond
	sa, hold := m.cfg.SuspectAfter, m.cfg.DeadAfter+m.cfg.RepairTimeout
	t0 := time.Now()
	tickAt := func(now time.Time) {
		m.mu.Lock()
		m.leaseLocked(now)
		m.mu.Unlock()
	}
	tickAt(t0)
	if m.lease.expiredAt(t0.Add(time.Hour)) {
		t.Fatal("lease ran out with no member to wait for")
	}

	m.validated(2, 1, phantom(2), phantom(2), 10, t0)
	tickAt(t0)
	if m.lease.expiredAt(t0.Add(sa - time.Millisecond)) {
		t.Fatal("member heard at t0: lease out before SuspectAfter")
	}
	if !m.lease.expiredAt(t0.Add(sa)) {
		t.Fatal("member heard at t0: lease still held at SuspectAfter")
	}

	// A second member heard later does not extend the first one's lease.
	m.validated(3, 1, phantom(3), phantom(3), 10, t0.Add(sa/2))
	tickAt(t0.Add(sa / 2))
	if !m.lease.expiredAt(t0.Add(sa)) {
		t.Fatal("the earliest news bounds the lease")
	}

	// Silent for DeadAfter (declared dead by the walk) the first still
	// counts; past DeadAfter + RepairTimeout it no longer does.
	later := t0.Add(hold - time.Millisecond)
	m.mu.Lock()
	m.members[3].LastHeard = later
	m.walkLocked(later)
	dead := m.members[2].State == StateDead
	m.mu.Unlock()
	if !dead {
		t.Fatal("member 2 silent past DeadAfter is not dead")
	}
	tickAt(later)
	if !m.lease.expiredAt(later) {
		t.Fatal("a member dead for less than RepairTimeout holds the lease")
	}
	gone := t0.Add(hold)
	tickAt(gone)
	if m.lease.expiredAt(gone) {
		t.Fatal("member 2 silent for DeadAfter + RepairTimeout still holds the lease")
	}

	// A dead member that challenges us (alive, deaf to us) is vouched for
	// by its challenges, which carry its high-water mark.
	m.challengedBy(2, gone)
	tickAt(gone)
	if m.lease.expiredAt(gone) || !m.lease.expiredAt(gone.Add(sa)) {
		t.Fatal("a dead member's challenge at t vouches for it until t + SuspectAfter, no longer")
	}

	// A member that left counts no more.
	m.mu.Lock()
	for _, e := range m.members {
		e.State = StateLeft
		m.syncLocked(e)
	}
	m.mu.Unlock()
	tickAt(gone)
	if m.lease.expiredAt(gone.Add(time.Hour)) {
		t.Fatal("departed members hold the lease")
	}
}

// TestLeaseAllocs: the tick's lease computation and the readers' check do
// not allocate.
func TestLeaseAllocs(t *testing.T) {
	m := capTable()
	now := time.Now()
	for i := 2; i < 34; i++ {
		m.validated(uint64(i), 1, phantom(i), phantom(i), 10, now)
	}
	if a := testing.AllocsPerRun(100, func() {
		m.mu.Lock()
		m.leaseLocked(now)
		m.mu.Unlock()
		_ = m.lease.expired()
	}); a != 0 {
		t.Fatalf("%v allocations per lease tick and check", a)
	}
}

// BenchmarkSilent is the read path's lease check with a member counted: an
// atomic load and a monotonic clock read.
func BenchmarkSilent(b *testing.B) {
	m := capTable()
	m.validated(2, 1, phantom(2), phantom(2), 10, time.Now().Add(time.Hour))
	m.mu.Lock()
	m.leaseLocked(time.Now())
	m.mu.Unlock()
	b.ReportAllocs()
	silent := 0
	for b.Loop() {
		if m.lease.expired() {
			silent++
		}
	}
	if silent != 0 {
		b.Fatalf("lease ran out %d times", silent)
	}
}

// TestOwnStallIsNotSilence: a tick that comes late (this node was not
// scheduled) counts its members' silence from the resume: none is
// suspected or declared dead for the stall, and none is given up by the
// lease, which stays out until they are heard again.
func TestOwnStallIsNotSilence(t *testing.T) {
	m := capTable()
	m.cfg.Heartbeat, m.cfg.RepairTimeout = 100*time.Millisecond, 500*time.Millisecond
	t0 := time.Now()
	m.validated(2, 1, phantom(2), phantom(2), 10, t0)
	m.tick(t0)
	// Frozen for longer than DeadAfter + RepairTimeout.
	resume := t0.Add(m.cfg.DeadAfter + m.cfg.RepairTimeout + time.Second)
	m.tick(resume)
	m.mu.Lock()
	st := m.members[2].State
	m.mu.Unlock()
	if st != StateAlive {
		t.Fatalf("after our own stall the member is %v, want alive", st)
	}
	if !m.lease.expiredAt(resume) {
		t.Fatal("the lease vouches for a member not heard since before our stall")
	}
	// Still silent DeadAfter after the resume: dead now, and held.
	later := resume.Add(m.cfg.DeadAfter)
	for at := resume; !at.After(later); at = at.Add(tickInterval(m.cfg)) {
		m.tick(at)
	}
	m.mu.Lock()
	st = m.members[2].State
	m.mu.Unlock()
	if st != StateDead || !m.lease.expiredAt(later) {
		t.Fatalf("silent DeadAfter past the resume: %v, lease out %v; want dead and out", st, m.lease.expiredAt(later))
	}
	// Heard again: vouched for.
	m.mu.Lock()
	m.members[2].LastHeard = later
	m.mu.Unlock()
	m.tick(later.Add(tickInterval(m.cfg)))
	if m.lease.expiredAt(later.Add(tickInterval(m.cfg))) {
		t.Fatal("a member heard again after the stall is not vouched for")
	}
}
