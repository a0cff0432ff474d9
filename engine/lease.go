package engine

import (
	"math"
	"sync/atomic"
	"time"
)

// newsLease is what the node can vouch for without a lock: until when it
// has heard, recently enough, the news of every member that may still
// publish to it. In the direct mesh (at most DirectLimit live members)
// every member heartbeats every other one each Heartbeat, and every
// heartbeat carries the sender's high-water mark; a member declared dead
// that is only deaf to us carries it in its challenges. So a member heard
// at t has told us of everything it published before t: applied, or a gap
// we are repairing and will give up (a Gap) within RepairTimeout. Heard
// within SuspectAfter, it has nothing we do not know of but what it
// published in the last SuspectAfter.
//
// A member that falls silent — crashed, cut off, or a process the host has
// not scheduled — may have published what we never heard of. It holds the
// lease until it has been silent for DeadAfter + RepairTimeout, the
// silence after which the mesh treats it as gone (its gaps are given up
// as origin_dead), or until it is heard again. So after a crash the caches
// pass their reads through for about DeadAfter + RepairTimeout −
// SuspectAfter; a node whose own goroutines were not scheduled sees its
// members silent and passes reads through until it has heard them again.
//
// The membership tick computes the lease; readers compare it with the
// clock (Node.Silent). A tick that does not run leaves the lease to run
// out, never to stretch: the lease only errs on the safe side.
//
// Above DirectLimit, membership is SWIM: a node hears a few members per
// period, not every member every round, so the lease does not apply
// (Node.Silent is false) and reads rely on relay repair and Gaps alone.
//
// Known limits: news is stamped when read, not when sent, so frames
// queued behind a read heartbeat are not vouched against (after our own
// stall nothing is vouched for a Heartbeat, which covers the queue a
// stall builds); and a member heard again after a silence longer than
// SuspectAfter + RepairTimeout vouches at once, while the gaps its mark
// reveals are repaired (GapPending holds reads only once they are
// overdue). A node cut off for longer than DeadAfter + RepairTimeout
// serves again, as the mesh has given its members up.
type newsLease struct {
	base  time.Time    // the lease's clock: ns since base
	until atomic.Int64 // clock until which every member's news is vouched; math.MaxInt64: no member to wait for
}

func (l *newsLease) init() {
	l.base = time.Now()
	l.until.Store(math.MaxInt64)
}

// set records the lease computed at now: every counted member is vouched
// for until the earliest of their news + SuspectAfter.
func (l *newsLease) set(until time.Time, any bool) {
	v := int64(math.MaxInt64)
	if any {
		v = max(int64(until.Sub(l.base)), 0)
	}
	if l.until.Load() != v {
		l.until.Store(v)
	}
}

// expired reports whether the lease has run out: one atomic load, and a
// clock read unless no member is counted.
func (l *newsLease) expired() bool {
	u := l.until.Load()
	return u != math.MaxInt64 && int64(time.Since(l.base)) >= u
}

// expiredAt is expired at a given time (tests).
func (l *newsLease) expiredAt(now time.Time) bool {
	u := l.until.Load()
	return u != math.MaxInt64 && int64(now.Sub(l.base)) >= u
}

// leaseLocked recomputes the lease from the member table (tick, direct
// mesh). A member counts while it is validated, has not left, and has been
// silent for less than DeadAfter + RepairTimeout; its news is the later of
// its last heartbeat and its last challenge.
func (m *membership) leaseLocked(now time.Time) {
	if m.swim != nil {
		m.lease.set(time.Time{}, false)
		return
	}
	hold := m.cfg.DeadAfter + m.cfg.RepairTimeout
	if !m.resumedAt.IsZero() && now.Before(m.resumedAt.Add(m.cfg.Heartbeat+tickInterval(m.cfg))) {
		// Just back from a stall: the first frames read are the oldest
		// queued (and an overflowing queue dropped the newest), so news
		// read now may be as old as the stall. Nothing is vouched for
		// until a Heartbeat's worth of current news has had time to come.
		m.lease.set(now, true)
		return
	}
	var until time.Time
	any := false
	for _, e := range m.members {
		if !e.validated || e.State == StateLeft {
			continue
		}
		news := e.LastHeard
		if e.challengedAt.After(news) {
			news = e.challengedAt
		}
		if silent := m.silenceLocked(news, now); silent >= hold { // our stall is not its silence (tick)
			continue
		}
		if t := news.Add(m.cfg.SuspectAfter); !any || t.Before(until) {
			until, any = t, true
		}
	}
	m.lease.set(until, any)
}

// Silent reports whether a member that may still publish to this node has
// not been heard for SuspectAfter: it may have published invalidations the
// node has not heard of. A cache must not serve what it holds while it is
// true (presets passes reads through then). A member stops counting once
// heard again, once it left, or after DeadAfter + RepairTimeout of
// silence, when the mesh gives it up as gone (see newsLease); for a
// Heartbeat after this node's own stall nothing is vouched for. Silent is
// always false while membership runs SWIM: more than DirectLimit live
// members and members a validated member named, or probes from two
// members (swimModeLocked). It costs one atomic load and a clock read; it
// does not allocate.
func (n *Node) Silent() bool { return n.members.lease.expired() }
