package engine

import (
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warpmesh/warpmesh/codec"
)

// MemberState is a member's liveness as this node sees it.
type MemberState = codec.MemberState

// Member states.
const (
	StateAlive   = codec.StateAlive
	StateSuspect = codec.StateSuspect
	StateDead    = codec.StateDead
	StateLeft    = codec.StateLeft
)

// Member is one other node of the mesh as this node knows it.
type Member struct {
	ID          uint64
	Addr        netip.AddrPort // advertised address
	State       MemberState
	Epoch       uint64 // boot epoch: grows on every restart
	Incarnation uint64 // grows when the member refutes a suspicion
	LastHeard   time.Time
}

// newer reports whether (epoch, inc) is after (e2, i2).
func newer(epoch, inc, e2, i2 uint64) bool {
	return epoch > e2 || (epoch == e2 && inc > i2)
}

type memberEntry struct {
	Member
	heardMulticast time.Time // last heartbeat that came through the group
	stateSince     time.Time
}

// destView is the immutable fan-out view the sender loop reads without a
// lock. It is rebuilt, rarely, when membership changes.
type destView struct {
	live         []netip.AddrPort // alive and suspect members
	ids          []uint64         // parallel to live
	allMulticast bool             // every live member was heard via the group recently
}

// membership is the member table. Everything but the view is under mu.
type membership struct {
	mu      sync.Mutex
	self    uint64
	members map[uint64]*memberEntry
	cfg     *config
	events  *eventQueue
	view    atomic.Pointer[destView]
	digest  []codec.DigestEntry // scratch for heartbeats, under mu
	cursor  int                 // rotates digest coverage in big meshes
}

func newMembership(self uint64, cfg *config, events *eventQueue) *membership {
	m := &membership{self: self, members: make(map[uint64]*memberEntry), cfg: cfg, events: events}
	m.view.Store(&destView{})
	return m
}

// heard applies a heartbeat received directly from the member itself. It
// returns true when the member is new (or rejoined), so the caller answers
// at once with its own heartbeat.
func (m *membership) heard(id, epoch, inc uint64, addr netip.AddrPort, viaGroup bool, now time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.members[id]
	if !ok {
		m.replaceAddrLocked(id, addr, now)
		e = &memberEntry{Member: Member{ID: id, Addr: addr, State: StateAlive, Epoch: epoch, Incarnation: inc, LastHeard: now}, stateSince: now}
		if viaGroup {
			e.heardMulticast = now
		}
		m.members[id] = e
		m.events.push(Event{Type: EventJoin, Member: e.Member})
		m.rebuildLocked(now)
		return true
	}
	if newer(e.Epoch, e.Incarnation, epoch, inc) {
		return false // stale or replayed heartbeat
	}
	rejoin := epoch > e.Epoch || e.State == StateDead || e.State == StateLeft
	wasSuspect := e.State == StateSuspect
	changed := e.Addr != addr || e.State != StateAlive
	if e.Addr != addr {
		m.replaceAddrLocked(id, addr, now)
	}
	e.Addr, e.Epoch, e.Incarnation, e.LastHeard = addr, epoch, inc, now
	if viaGroup {
		if e.heardMulticast.IsZero() {
			changed = true
		}
		e.heardMulticast = now
	}
	if e.State != StateAlive {
		e.State, e.stateSince = StateAlive, now
	}
	switch {
	case rejoin:
		m.events.push(Event{Type: EventJoin, Member: e.Member})
	case wasSuspect:
		m.events.push(Event{Type: EventAlive, Member: e.Member})
	}
	if changed || rejoin {
		m.rebuildLocked(now)
	}
	return rejoin
}

// replaceAddrLocked retires any other member advertising addr: two live
// nodes cannot share one address, so the older one was restarted with a new
// id.
func (m *membership) replaceAddrLocked(id uint64, addr netip.AddrPort, now time.Time) {
	for oid, o := range m.members {
		if oid != id && o.Addr == addr && (o.State == StateAlive || o.State == StateSuspect) {
			o.State, o.stateSince = StateLeft, now
			m.events.push(Event{Type: EventLeave, Member: o.Member})
		}
	}
}

// gossip applies a digest entry about a third party (or about us).
// It returns true when the entry says we are suspected or dead, so the
// caller refutes with a higher incarnation.
// It also reports a member learned for the first time (learned), so the
// caller greets it: it may not know us yet.
func (m *membership) gossip(d *codec.DigestEntry, selfEpoch, selfInc uint64, now time.Time) (refute, learned bool) {
	if d.ID == m.self {
		return (d.State == StateSuspect || d.State == StateDead) &&
			d.Epoch == selfEpoch && d.Incarnation >= selfInc, false
	}
	if !d.Addr.IsValid() || d.Addr.Port() == 0 {
		return false, false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.members[d.ID]
	if !ok {
		if d.State != StateAlive {
			return false, false
		}
		m.replaceAddrLocked(d.ID, d.Addr, now)
		e = &memberEntry{Member: Member{ID: d.ID, Addr: d.Addr, State: StateAlive, Epoch: d.Epoch, Incarnation: d.Incarnation, LastHeard: now}, stateSince: now}
		m.members[d.ID] = e
		m.events.push(Event{Type: EventJoin, Member: e.Member})
		m.rebuildLocked(now)
		return false, true
	}
	if !newer(d.Epoch, d.Incarnation, e.Epoch, e.Incarnation) {
		return false, false
	}
	// Strictly newer news about a member: take its address and, if it was
	// written off, give it a fresh chance to prove itself.
	e.Epoch, e.Incarnation = d.Epoch, d.Incarnation
	if d.State == StateAlive && (e.State == StateDead || e.State == StateLeft) {
		e.Addr, e.State, e.stateSince, e.LastHeard = d.Addr, StateAlive, now, now
		m.events.push(Event{Type: EventJoin, Member: e.Member})
		m.rebuildLocked(now)
	} else if d.State == StateLeft && e.State != StateLeft {
		e.State, e.stateSince = StateLeft, now
		m.events.push(Event{Type: EventLeave, Member: e.Member})
		m.rebuildLocked(now)
	}
	return false, false
}

// left applies a graceful leave.
func (m *membership) left(id, epoch uint64, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.members[id]
	if !ok || epoch < e.Epoch || e.State == StateLeft {
		return
	}
	e.State, e.stateSince = StateLeft, now
	m.events.push(Event{Type: EventLeave, Member: e.Member})
	m.rebuildLocked(now)
}

// tick runs failure detection: silence → suspect → dead, and forgets
// members that have been dead or gone for long.
func (m *membership) tick(now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	changed := false
	reap := 10 * m.cfg.DeadAfter
	for id, e := range m.members {
		silent := now.Sub(e.LastHeard)
		switch e.State {
		case StateAlive:
			if silent >= m.cfg.DeadAfter {
				e.State, e.stateSince = StateDead, now
				m.events.push(Event{Type: EventDead, Member: e.Member})
				changed = true
			} else if silent >= m.cfg.SuspectAfter {
				e.State, e.stateSince = StateSuspect, now
				m.events.push(Event{Type: EventSuspect, Member: e.Member})
				changed = true
			}
		case StateSuspect:
			if silent >= m.cfg.DeadAfter {
				e.State, e.stateSince = StateDead, now
				m.events.push(Event{Type: EventDead, Member: e.Member})
				changed = true
			}
		case StateDead, StateLeft:
			if now.Sub(e.stateSince) >= reap {
				delete(m.members, id)
			}
		}
		if !e.heardMulticast.IsZero() && now.Sub(e.heardMulticast) >= m.cfg.SuspectAfter {
			e.heardMulticast = time.Time{}
			changed = true
		}
	}
	if changed {
		m.rebuildLocked(now)
	}
}

// rebuildLocked publishes a new fan-out view. Allocates; membership changes
// are rare.
func (m *membership) rebuildLocked(time.Time) {
	v := &destView{allMulticast: true}
	ids := make([]uint64, 0, len(m.members))
	for id, e := range m.members {
		if e.State == StateAlive || e.State == StateSuspect {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		e := m.members[id]
		v.live = append(v.live, e.Addr)
		v.ids = append(v.ids, id)
		if e.heardMulticast.IsZero() {
			v.allMulticast = false
		}
	}
	if len(v.live) == 0 {
		v.allMulticast = false
	}
	m.view.Store(v)
}

// snapshot copies the table, sorted by id.
func (m *membership) snapshot() []Member {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Member, 0, len(m.members))
	for _, e := range m.members {
		out = append(out, e.Member)
	}
	slices.SortFunc(out, func(a, b Member) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out
}

func (m *membership) count(s *Stats) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range m.members {
		switch e.State {
		case StateAlive:
			s.MembersAlive++
		case StateSuspect:
			s.MembersSuspect++
		case StateDead:
			s.MembersDead++
		case StateLeft:
			s.MembersLeft++
		}
	}
}

// digestLocked fills m.digest with up to max entries, rotating through the
// table so that every member is eventually gossiped in large meshes.
func (m *membership) digestEntries(max int) []codec.DigestEntry {
	m.digest = m.digest[:0]
	if len(m.members) == 0 || max <= 0 {
		return m.digest
	}
	ids := make([]uint64, 0, len(m.members))
	for id := range m.members {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	n := min(max, len(ids))
	start := m.cursor % len(ids)
	for i := 0; i < n; i++ {
		e := m.members[ids[(start+i)%len(ids)]]
		m.digest = append(m.digest, codec.DigestEntry{
			ID: e.ID, Epoch: e.Epoch, Incarnation: e.Incarnation, Addr: e.Addr, State: e.State,
		})
	}
	m.cursor = start + n
	return m.digest
}

// unicastTargets lists where heartbeats go: every member not known gone.
func (m *membership) unicastTargets(dst []netip.AddrPort) []netip.AddrPort {
	for _, e := range m.members {
		if e.State == StateAlive || e.State == StateSuspect || e.State == StateDead {
			dst = append(dst, e.Addr)
		}
	}
	return dst
}
