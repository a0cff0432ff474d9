package engine

import (
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warpmesh/warpmesh/codec"
	"github.com/warpmesh/warpmesh/engine/internal/swim"
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

// Caps of the member table. A packet can add entries, so both pools are
// bounded; see membership for the eviction rules.
const (
	// MaxMembers bounds the validated members a node keeps (alive,
	// suspect, dead or left). Only a node that answered a challenge at its
	// address enters this pool. When it is full, the dead or departed
	// member silent the longest makes room; a full pool of live members
	// refuses newcomers (counted as DropMembersFull).
	MaxMembers = 16384
	// MaxUnvalidatedMembers bounds the members heard of but not yet
	// validated. When it is full, the one heard from least recently makes
	// room, so a flood of forged identities only churns this pool. A
	// joiner's first push-pull names every member at once, so the pool
	// must hold a whole mesh's worth: 4096 entries (about 1 MiB) cover
	// the 2000-node meshes the scale suite runs, twice over.
	MaxUnvalidatedMembers = 4096
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
	// validated: the member answered a challenge sent to Addr. Until then
	// it is sent nothing but challenges, is not gossiped, raises no event
	// and is not in the fan-out view.
	validated      bool
	src            netip.AddrPort // source of its RESPONSE (differs from Addr behind NAT)
	lastPacket     uint64         // highest packet number heard from a trusted source, this epoch
	packetAt       time.Time      // when lastPacket was heard
	heardMulticast time.Time      // last heartbeat that came through the group
	stateSince     time.Time
	repairTokens   float64   // bytes of retransmissions it may be sent (repairBudget)
	repairAt       time.Time // when repairTokens was last refilled
	deadRounds     int       // heartbeat rounds since it was declared dead (deadTargets)
	probedHWM      uint64    // our high-water mark in its last dead probe (deadTargets)
	challengedAt   time.Time // last CHALLENGE it sent us (alive, but deaf to us: challengedBy)
	// vouched: validated on an authenticated member's word (vouchLocked),
	// not by its own RESPONSE; its packet numbers are not known yet, so
	// the first trusted frame sets lastPacket.
	vouched     bool
	vouchedTill time.Time // end of its grace: authenticated frames raise its baseline until then
	// named: an unvalidated entry a validated member named (namedN); a
	// stranger's own ALIVE names nobody.
	named bool

	// What the table's incremental indexes hold for it (syncLocked):
	// the state it is counted under (0: not counted, unvalidated or
	// removed), and whether the fan-out working view holds it, at which
	// address, and counted as not heard via the group.
	counted  MemberState
	inView   bool
	viewAddr netip.AddrPort
	viewNoMC bool
}

// destView is the immutable fan-out view the sender loop reads without a
// lock (viewCell.Load). A new one is published when membership changed
// since the last was read.
type destView struct {
	live         []netip.AddrPort // validated alive and suspect members, by id
	ids          []uint64         // parallel to live, sorted
	allMulticast bool             // every live member was heard via the group recently
}

// viewCell holds the published fan-out view. The member table keeps its
// working copy (sorted ids and addresses) current with every change, in
// O(log N) search and one memmove per change, and marks the cell stale;
// Load publishes a copy of the working view first when it is stale. So
// every reader sees every membership change made before its Load, as if
// each change were published at once, while a join wave of N members
// costs one O(N) copy per read instead of an O(N log N) rebuild per join.
// Load takes the member table's lock only when the view is stale; it must
// not be called under that lock (use publishLocked there).
type viewCell struct {
	m     *membership
	cur   atomic.Pointer[destView]
	stale atomic.Bool
}

// Load returns the current fan-out view, publishing pending changes.
// It does not allocate unless membership changed since the last Load.
func (c *viewCell) Load() *destView {
	if c.stale.Load() {
		c.m.mu.Lock()
		c.m.publishLocked()
		c.m.mu.Unlock()
	}
	return c.cur.Load()
}

// membership is the member table. Everything but the view is under mu.
//
// Two pools share the table. Validated members (at most MaxMembers) are
// the mesh: they get heartbeats, data and repairs, and digests name them.
// Unvalidated ones (at most MaxUnvalidatedMembers, one per address) were
// heard of, from their own unauthenticated ALIVE or from a digest, and
// wait for their address to answer a challenge (validate.go); they expire
// after SuspectAfter of silence. Every state change of a validated member
// that could be forged into denial — a comeback from dead or left, a new
// epoch, a new address — waits for a fresh RESPONSE too.
type membership struct {
	mu         sync.Mutex
	self       uint64
	members    map[uint64]*memberEntry
	pendingAt  map[netip.AddrPort]uint64 // unvalidated entries by address
	pendingQ   []uint64                  // unvalidated ids, oldest first (may hold stale ids)
	validAt    map[netip.AddrPort]uint64 // validated entries by address
	maxValid   int                       // MaxMembers (smaller in tests)
	maxPending int                       // MaxUnvalidatedMembers (smaller in tests)
	validatedN int
	cfg        *config
	events     *eventQueue
	view       viewCell

	// Incremental indexes of the validated members (syncLocked), so that
	// neither a join nor Stats walks the table: the fan-out working view
	// (sorted ids, parallel addresses, members not heard via the group)
	// and the count of members in each state.
	vIDs        []uint64
	vAddrs      []netip.AddrPort
	vNoMC       int
	nState      [StateLeft + 1]int
	dead        map[uint64]*memberEntry // validated members declared dead (deadTargets)
	nLive       atomic.Int64            // len(vIDs), for readers that need only the count
	walkAt      time.Time               // next walk of the table by tick in SWIM mode
	askedAt     time.Time               // last scan of the pending queue (pendingDue)
	digest      []codec.DigestEntry     // scratch for heartbeats, under mu
	ids         []uint64                // scratch for digests, under mu
	cursor      int                     // rotates digest coverage in big meshes
	refused     atomic.Uint64           // validations refused: pool full of live members, or a live member's id claimed elsewhere
	evictedUnv  atomic.Uint64           // unvalidated entries evicted for room
	evictedGone atomic.Uint64           // dead or left members evicted for room
	vouchedN    atomic.Uint64           // members validated on an authenticated member's word (vouchLocked)
	isolatedAt  time.Time               // last tick that found no validated member live (tick)
	tickAt      time.Time               // last tick (tick)
	resumedAt   time.Time               // last tick that came late: this node was not scheduled (tick)
	stallFrom   time.Time               // the tick before it: the stall is (stallFrom, resumedAt)
	lease       newsLease               // what the node can vouch for, for caches' read paths (lease.go)

	// SWIM (probe.go): the machine runs while more than DirectLimit
	// validated members are live; nil otherwise.
	swim      *swim.Machine
	selfEpoch uint64
	selfInc   *atomic.Uint64  // the node's incarnation
	wake      chan<- struct{} // the probe loop's wake-up
	swimActs  []swim.Action   // scratch, under mu
	swimUps   []swim.Update   // scratch, under mu
	swimCur   int             // rotates digests in SWIM mode
	probedAt  time.Time       // last ping or ping-req from a member
	probedBy  uint64          // the member that sent it
	probedPrv time.Time       // the last one before it from another member (swimModeLocked wants two)
	namedN    int             // unvalidated members a validated member named (gossip, updates, push-pull)
	swimSince time.Time       // when SWIM last started
	synced    bool            // a push-pull answer arrived once
}

func newMembership(self uint64, cfg *config, events *eventQueue) *membership {
	m := &membership{self: self, members: make(map[uint64]*memberEntry),
		pendingAt: make(map[netip.AddrPort]uint64), validAt: make(map[netip.AddrPort]uint64), dead: make(map[uint64]*memberEntry),
		maxValid: MaxMembers, maxPending: MaxUnvalidatedMembers, cfg: cfg, events: events}
	m.view.m = m
	m.view.cur.Store(&destView{})
	m.lease.init()
	return m
}

// heard applies a heartbeat received from the member itself (an ALIVE
// whose origin is id). It reports whether the sender is a validated member
// whose heartbeat was taken (only then is its digest worth reading), and
// an address to challenge (invalid for none): a member not yet validated,
// one coming back from dead or left, or a validated one claiming a new
// address.
func (m *membership) heard(id, epoch, inc uint64, addr netip.AddrPort, viaGroup bool, now time.Time) (taken bool, challenge netip.AddrPort) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.members[id]
	if !ok || !e.validated {
		m.pendingLocked(id, epoch, inc, addr, false, now)
		return false, addr
	}
	if newer(e.Epoch, e.Incarnation, epoch, inc) || epoch != e.Epoch {
		return false, netip.AddrPort{} // stale, replayed, or a new epoch (admit handles those)
	}
	if e.Addr != addr || e.State == StateDead || e.State == StateLeft {
		return false, addr // a move or a comeback: only a RESPONSE from there proves it
	}
	if m.swim != nil {
		// Above DirectLimit the probes judge liveness: a heartbeat is
		// only news of the member's incarnation.
		e.LastHeard = now
		if viaGroup {
			wasZero := e.heardMulticast.IsZero()
			e.heardMulticast = now
			if wasZero {
				m.syncLocked(e)
			}
		}
		m.swimHeardLocked(e, inc, now)
		return true, netip.AddrPort{}
	}
	wasSuspect := e.State == StateSuspect
	changed := e.State != StateAlive
	e.Incarnation, e.LastHeard = inc, now
	if viaGroup {
		if e.heardMulticast.IsZero() {
			changed = true
		}
		e.heardMulticast = now
	}
	if e.State != StateAlive {
		e.State, e.stateSince = StateAlive, now
	}
	if wasSuspect {
		m.events.push(Event{Type: EventAlive, Member: e.Member})
	}
	if changed {
		m.syncLocked(e)
	}
	return true, netip.AddrPort{}
}

// pendingLocked records (or refreshes) an unvalidated member. One address
// holds one unvalidated member: a new id there replaces the old one.
func (m *membership) pendingLocked(id, epoch, inc uint64, addr netip.AddrPort, named bool, now time.Time) {
	e, ok := m.members[id]
	if ok {
		if e.validated || newer(e.Epoch, e.Incarnation, epoch, inc) {
			return // a validated member's move waits for its RESPONSE
		}
		if named && !e.named {
			e.named = true
			m.namedN++
		}
		if e.Addr != addr {
			if m.pendingAt[e.Addr] == id {
				delete(m.pendingAt, e.Addr)
			}
		}
		e.Addr, e.Epoch, e.Incarnation, e.LastHeard = addr, epoch, inc, now
	} else {
		if len(m.members)-m.validatedN >= m.maxPending {
			m.evictUnvalidatedLocked()
		}
		e = &memberEntry{Member: Member{ID: id, Addr: addr, State: StateAlive, Epoch: epoch, Incarnation: inc, LastHeard: now}, stateSince: now, named: named}
		m.members[id] = e
		m.pendingQ = append(m.pendingQ, id)
		if named {
			m.namedN++
		}
	}
	if old, ok := m.pendingAt[addr]; ok && old != id {
		if o := m.members[old]; o != nil && !o.validated {
			delete(m.members, old)
			if o.named {
				m.namedN--
			}
		}
	}
	m.pendingAt[addr] = id
}

// evictUnvalidatedLocked drops the unvalidated member that was first
// heard of longest ago (a FIFO: amortised O(1), so a flood of forged
// identities costs a constant per identity). A legitimate newcomer pushed
// out this way is not locked out: its RESPONSE re-creates it validated.
func (m *membership) evictUnvalidatedLocked() {
	for len(m.pendingQ) > 0 {
		id := m.pendingQ[0]
		m.pendingQ = m.pendingQ[1:]
		if e := m.members[id]; e != nil && !e.validated {
			m.removeLocked(e)
			m.evictedUnv.Add(1)
			break
		}
	}
	if cap(m.pendingQ) > 4*m.maxPending && len(m.pendingQ) < cap(m.pendingQ)/4 {
		m.pendingQ = append([]uint64(nil), m.pendingQ...) // let the consumed head go
	}
}

// removeLocked deletes e from the table and its indexes.
func (m *membership) removeLocked(e *memberEntry) {
	delete(m.members, e.ID)
	if e.validated && m.swim != nil {
		m.swim.Remove(e.ID)
	}
	if e.validated {
		m.validatedN--
		if m.validAt[e.Addr] == e.ID {
			delete(m.validAt, e.Addr)
		}
	} else if m.pendingAt[e.Addr] == e.ID {
		delete(m.pendingAt, e.Addr)
	}
	if !e.validated && e.named {
		e.named = false
		m.namedN--
	}
	m.syncLocked(e)
}

// validated applies a RESPONSE that echoed a good cookie: whoever holds id
// at epoch answered at addr (its packet came from src with packet number
// packet). The member becomes (or stays) validated there, unless the
// answer is stale, the table is full of live members, or the id belongs to
// a live member at another address. It reports whether the member is now
// validated at addr in epoch (only then may the RESPONSE move anything
// else, such as the receive state's epoch), and whether this is news the
// member should hear of at once (a join, a comeback or a move), so the
// caller greets it with a heartbeat.
func (m *membership) validated(id, epoch uint64, addr, src netip.AddrPort, packet uint64, now time.Time) (accepted, greet bool) {
	if id == m.self {
		return false, false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.validatedLocked(id, epoch, addr, src, packet, now)
}

func (m *membership) validatedLocked(id, epoch uint64, addr, src netip.AddrPort, packet uint64, now time.Time) (accepted, greet bool) {
	e, ok := m.members[id]
	if ok && epoch < e.Epoch {
		return false, false // a stale answer
	}
	if ok && e.validated && e.State == StateAlive && e.Addr != addr {
		// A live member does not move: whoever answered at addr claims
		// its id (plaintext cannot tell). A real move is taken once the
		// old address has gone silent (suspect).
		m.refused.Add(1)
		return false, false
	}
	wasLive := ok && e.validated && e.Epoch == epoch && (e.State == StateAlive || e.State == StateSuspect)
	if !ok || !e.validated {
		if m.validatedN >= m.maxValid && !m.evictGoneLocked() {
			m.refused.Add(1)
			return false, false
		}
		inc := uint64(0)
		if ok {
			if e.Epoch == epoch {
				inc = e.Incarnation
			}
			m.removeLocked(e)
		}
		e = &memberEntry{Member: Member{ID: id, Epoch: epoch, Incarnation: inc}}
		m.members[id] = e
		e.validated = true
		m.validatedN++
	} else if e.Addr == addr && e.Epoch == epoch && e.State != StateDead && e.State != StateLeft {
		// Already validated there: a late or repeated RESPONSE.
		e.src, e.LastHeard = src, now
		if packet > e.lastPacket || e.vouched {
			e.lastPacket, e.packetAt = packet, now
		}
		e.vouched = false
		return true, false
	} else if epoch > e.Epoch {
		e.Epoch, e.Incarnation = epoch, 0
	}
	reused := m.replaceAddrLocked(id, addr, now)
	if m.validAt[e.Addr] == id {
		delete(m.validAt, e.Addr)
	}
	m.validAt[addr] = id
	e.Addr, e.src, e.LastHeard = addr, src, now
	e.lastPacket, e.packetAt, e.vouched = packet, now, false
	e.State, e.stateSince = StateAlive, now
	if m.swim != nil {
		m.swim.Add(entrySwim(e), now)
		if reused {
			m.swim.Announce(id) // every node holding the former id there needs this
		}
	}
	if !wasLive {
		m.events.push(Event{Type: EventJoin, Member: e.Member})
	}
	m.syncLocked(e)
	return true, true
}

// evictGoneLocked makes room in the validated pool by dropping the dead
// or departed member silent the longest; false when every member is live.
func (m *membership) evictGoneLocked() bool {
	var victim *memberEntry
	for _, e := range m.members {
		if e.validated && (e.State == StateDead || e.State == StateLeft) &&
			(victim == nil || e.LastHeard.Before(victim.LastHeard)) {
			victim = e
		}
	}
	if victim == nil {
		return false
	}
	m.removeLocked(victim)
	m.evictedGone.Add(1)
	return true
}

// replaceAddrLocked retires any other validated member at addr: two live
// nodes cannot share one address, so the older one was restarted with a
// new id. Only a validated newcomer retires anyone. It reports whether
// another validated member (live or not) held addr: id's news then
// replaces that member's at every node that still lists it there.
func (m *membership) replaceAddrLocked(id uint64, addr netip.AddrPort, now time.Time) (reused bool) {
	oid, ok := m.validAt[addr]
	if !ok || oid == id {
		return false
	}
	o := m.members[oid]
	if o == nil || o.Addr != addr {
		return false
	}
	if o.State == StateAlive || o.State == StateSuspect {
		o.State, o.stateSince = StateLeft, now
		m.syncLocked(o)
		m.events.push(Event{Type: EventLeave, Member: o.Member})
		if m.swim != nil {
			m.swim.Leave(o.ID, o.Epoch, nil) // and the probes stop asking for it there
		}
	}
	return true
}

// vouches reports whether the members h's frame names may be vouched for
// (vouchLocked): it was authenticated (a tag the keyring verified: receive
// drops it otherwise) and it is the newest frame heard from its validated
// sender, so an authentic frame captured earlier and replayed adds nobody.
func (m *membership) vouches(h *codec.Header) bool {
	if h.Flags&codec.FlagAuth == 0 {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.members[h.Origin]
	return e != nil && e.validated && !e.vouched && e.Epoch == h.Epoch && e.lastPacket == h.Packet
}

// vouchLocked takes a member first heard of from an authenticated
// member's digest, update or push-pull as validated at the address given,
// without a challenge of our own: every entry a member gossips is one it
// validated itself, and with a keyring only a key holder can have sent
// it, so its word is as good as a RESPONSE. (In plaintext anyone can
// forge the frame, and the address must answer a challenge first, which
// makes a cold start of N nodes cost ~6 N² frames; with a keyring a
// cold start spreads by gossip alone.) Only a newcomer is vouched for: a
// validated member's comeback, new epoch or move still waits for its
// RESPONSE. It reports whether the member was taken.
func (m *membership) vouchLocked(id, epoch, inc uint64, addr netip.AddrPort, now time.Time) bool {
	if e, ok := m.members[id]; ok && e.validated {
		return false
	}
	if addr == m.cfg.advertise {
		return false // our own address: a former self others still list (a restart with a new id)
	}
	if o, ok := m.validAt[addr]; ok {
		if e := m.members[o]; e != nil && (e.State == StateAlive || e.State == StateSuspect) && epoch <= e.Epoch {
			// A live member is there and the newcomer did not boot after
			// it: stale news (a former self of the member gossiped late),
			// or clocks that disagree. Only a RESPONSE from there proves
			// a newcomer took the address.
			return false
		}
		// A live member is there, but the newcomer booted after it (an
		// epoch is the boot time): one socket answers at an address, so
		// the member restarted with a new id there, and a key holder
		// validated the newcomer there. validatedLocked retires the old
		// id (replaceAddrLocked) and spreads that.
	}
	if ok, _ := m.validatedLocked(id, epoch, addr, addr, 0, now); !ok {
		return false
	}
	e := m.members[id]
	e.vouched, e.vouchedTill, e.Incarnation = true, now.Add(m.cfg.Heartbeat), max(e.Incarnation, inc)
	m.vouchedN.Add(1)
	return true
}

// gossip applies a digest entry about a third party (or about us), from
// the heartbeat of a validated member. It returns refute when the entry
// says we are suspected or dead, so the caller refutes with a higher
// incarnation, and an address to challenge: a member learned for the first
// time, or news that a validated member lives at a new address or is back.
// Gossip alone never revives, moves or adds a member: the address must
// answer first.
func (m *membership) gossip(d *codec.DigestEntry, selfEpoch, selfInc uint64, authed bool, now time.Time) (refute bool, challenge netip.AddrPort) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.gossipLocked(d, selfEpoch, selfInc, authed, now)
}

// gossipLocked is gossip; authed says the entry came in a frame that
// vouches (membership.vouches) for the newcomers it names.
func (m *membership) gossipLocked(d *codec.DigestEntry, selfEpoch, selfInc uint64, authed bool, now time.Time) (refute bool, challenge netip.AddrPort) {
	if d.ID == m.self {
		return (d.State == StateSuspect || d.State == StateDead) &&
			d.Epoch == selfEpoch && d.Incarnation >= selfInc, netip.AddrPort{}
	}
	if !d.Addr.IsValid() || d.Addr.Port() == 0 {
		return false, netip.AddrPort{}
	}
	e, ok := m.members[d.ID]
	if !ok || !e.validated {
		if d.State != StateAlive {
			return false, netip.AddrPort{}
		}
		if authed && m.vouchLocked(d.ID, d.Epoch, d.Incarnation, d.Addr, now) {
			return false, netip.AddrPort{}
		}
		if ok && !newer(d.Epoch, d.Incarnation, e.Epoch, e.Incarnation) {
			return false, d.Addr // known, still unanswered: ask again (paced by the validator)
		}
		m.pendingLocked(d.ID, d.Epoch, d.Incarnation, d.Addr, true, now)
		return false, d.Addr
	}
	if !newer(d.Epoch, d.Incarnation, e.Epoch, e.Incarnation) {
		return false, netip.AddrPort{}
	}
	switch {
	case d.State == StateAlive && (e.State == StateDead || e.State == StateLeft || d.Addr != e.Addr || d.Epoch > e.Epoch):
		return false, d.Addr
	case d.State == StateLeft && e.State != StateLeft && d.Epoch == e.Epoch:
		e.Incarnation = d.Incarnation
		e.State, e.stateSince = StateLeft, now
		m.events.push(Event{Type: EventLeave, Member: e.Member})
		if m.swim != nil {
			m.swim.Leave(e.ID, e.Epoch, nil)
		}
		m.syncLocked(e)
	case d.Epoch == e.Epoch:
		e.Incarnation = d.Incarnation
	}
	return false, netip.AddrPort{}
}

// left applies a graceful leave (admit has checked where it came from).
func (m *membership) left(id, epoch uint64, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.members[id]
	if !ok || epoch < e.Epoch || e.State == StateLeft {
		return
	}
	if !e.validated {
		m.removeLocked(e)
		return
	}
	e.State, e.stateSince = StateLeft, now
	m.events.push(Event{Type: EventLeave, Member: e.Member})
	if m.swim != nil {
		m.swim.Leave(e.ID, e.Epoch, nil)
	}
	m.syncLocked(e)
}

// maxPacketRate bounds how fast a node's packet numbers can plausibly
// grow (frames per second, data included), for admit.
const maxPacketRate = 4 << 20

// admit screens a control frame from a validated member before it reaches
// the replay window, so a forged frame can neither take effect nor poison
// the window with a bogus packet number. A frame is trusted when it was
// authenticated or came from the member's validated address (or the
// source its RESPONSE came from). Then its packet number may run ahead of
// the last trusted one by what the member could have sent since; an
// untrusted frame only by half a replay window, which cannot push the
// member's real packets out of it. A LEAVE must be trusted and newer than
// the last trusted packet. A new epoch is never taken from a frame: the
// caller challenges the member's address and the RESPONSE moves it (a
// restarted node is back within a round trip; a forged restart changes
// nothing). A frame of an unknown or unvalidated origin is refused with
// DropUnknownMember: it must not create per-origin state. It returns the
// drop reason and, for a new epoch, where to challenge.
func (m *membership) admit(h *codec.Header, payload []byte, from netip.AddrPort, authed bool, now time.Time) (ok bool, why DropReason, challenge netip.AddrPort) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.members[h.Origin]
	if e == nil || !e.validated {
		return false, DropUnknownMember, netip.AddrPort{}
	}
	if h.Epoch < e.Epoch {
		return true, 0, netip.AddrPort{}
	}
	if h.Epoch > e.Epoch {
		if h.Type == codec.TypeAlive {
			challenge = from
			if a, _, err := codec.ParseAlive(payload); err == nil && a.Addr.IsValid() {
				challenge = a.Addr
			}
		}
		return false, DropUnvalidated, challenge
	}
	trusted := authed || from == e.Addr || (e.src.IsValid() && from == e.src)
	if e.vouched {
		// Validated on another member's word: its packet numbers are
		// news to us. For a Heartbeat its authenticated frames raise the
		// baseline to the highest they carry (an old capture replayed
		// first cannot pin it low); meanwhile its frames vouch for
		// nobody (vouches) and its LEAVE is not taken. A plaintext frame
		// (AuthAcceptPlaintext) sets nothing.
		if !authed || h.Type == codec.TypeLeave {
			return false, DropImplausible, netip.AddrPort{}
		}
		if h.Packet > e.lastPacket {
			e.lastPacket, e.packetAt = h.Packet, now
		}
		if !now.Before(e.vouchedTill) {
			e.vouched = false
		}
		return true, 0, netip.AddrPort{}
	}
	var limit uint64
	if trusted {
		limit = e.lastPacket + windowSize + uint64(max(now.Sub(e.packetAt).Seconds(), 0)*maxPacketRate)
	} else {
		limit = e.lastPacket + windowSize/2
	}
	if h.Packet > limit || h.Packet < e.lastPacket-min(e.lastPacket, 1<<32) {
		return false, DropImplausible, netip.AddrPort{}
	}
	if h.Type == codec.TypeLeave && (!trusted || h.Packet <= e.lastPacket) {
		return false, DropForged, netip.AddrPort{}
	}
	if trusted && h.Packet > e.lastPacket {
		e.lastPacket, e.packetAt = h.Packet, now
	}
	return true, 0, netip.AddrPort{}
}

// tick runs failure detection: silence → suspect → dead, and forgets
// members that have been dead or gone for long, and unvalidated ones that
// fell silent. Above DirectLimit the probes judge liveness and tick only
// forgets and expires: it walks the table then no more than once per
// max(Heartbeat, SuspectAfter/2), and only when the earliest of those
// deadlines it found on its last walk is due (at the latest SuspectAfter
// later), so a big table is not walked every half period by every node.
func (m *membership) tick(now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	// Our own stall is not our members' silence. A tick that comes long
	// after the last one means this node's goroutines were not scheduled
	// (a loaded host, a paused process): what its members sent meanwhile
	// is still queued, unread. Their silence is counted from the resume
	// (walkLocked, leaseLocked), not from their last frame we read.
	if !m.tickAt.IsZero() && now.Sub(m.tickAt) >= max(m.cfg.SuspectAfter/4, 2*tickInterval(m.cfg)) {
		m.stallFrom, m.resumedAt = m.tickAt, now
	}
	m.tickAt = now
	// A node that hears no live member at all may be the one cut off (an
	// inbound-only partition on its side); walkLocked keeps its dead
	// members until it has heard others again for the reaping time.
	if m.liveLocked() == 0 {
		m.isolatedAt = now
	}
	if m.swim == nil || !now.Before(m.walkAt) {
		m.walkLocked(now)
	}
	if len(m.pendingQ) > 2*m.maxPending {
		q := m.pendingQ[:0]
		for _, id := range m.pendingQ {
			if e := m.members[id]; e != nil && !e.validated {
				q = append(q, id)
			}
		}
		m.pendingQ = q
	}
	m.swimModeLocked(m.liveLocked(), m.namedN, now)
	m.leaseLocked(now)
}

// silenceLocked is how long a member last heard at heard has been silent
// at now, the stall (stallFrom, resumedAt) left out: our own stall is not
// its silence (tick). Only the stall itself is excluded, so ticks that
// are late again and again do not keep a crashed member alive.
func (m *membership) silenceLocked(heard, now time.Time) time.Duration {
	if !heard.Before(m.resumedAt) {
		return now.Sub(heard)
	}
	return max(m.stallFrom.Sub(heard), 0) + now.Sub(m.resumedAt)
}

// walkLocked is tick's walk of the table. It sets walkAt, the earliest
// deadline it saw (expiry of an unvalidated member or of group reception,
// reaping of a dead or departed member), within [max(Heartbeat,
// SuspectAfter/2), SuspectAfter] from now. Deadlines that arise later are
// all at least SuspectAfter away, so in SWIM mode none is missed by more
// than max(Heartbeat, SuspectAfter/2); in heartbeat mode tick walks every
// time.
func (m *membership) walkLocked(now time.Time) {
	reap := 10 * m.cfg.DeadAfter
	// A node that hears no live member at all may be the one cut off (an
	// inbound-only partition on its side: everyone still hears it). It
	// keeps its dead members then, and keeps sending them its challenges,
	// which carry its high-water mark: forgetting them would leave their
	// caches with no news of what it publishes for as long as the cut
	// lasts. Nor does it forget them the moment the cut heals and the
	// first of them is back (tick records isolatedAt): the others come
	// back within a round or two, and a member forgotten then is one it
	// neither probes nor hears (its frames dropped as a stranger's) until
	// it happens to greet us. Departed members go as usual.
	isolated := m.liveLocked() == 0
	next := now.Add(max(m.cfg.SuspectAfter, m.cfg.Heartbeat))
	due := func(t time.Time) {
		if t.Before(next) {
			next = t
		}
	}
	for _, e := range m.members {
		silent := m.silenceLocked(e.LastHeard, now)
		if !e.validated {
			if silent >= m.cfg.SuspectAfter {
				m.removeLocked(e)
				continue
			}
			due(e.LastHeard.Add(m.cfg.SuspectAfter))
			continue
		}
		switch e.State {
		case StateAlive:
			if m.swim != nil {
				break // the probes judge liveness (probe.go)
			}
			if silent >= m.cfg.DeadAfter {
				e.State, e.stateSince, e.deadRounds = StateDead, now, 0
				m.syncLocked(e)
				m.events.push(Event{Type: EventDead, Member: e.Member})
			} else if silent >= m.cfg.SuspectAfter {
				e.State, e.stateSince = StateSuspect, now
				m.syncLocked(e)
				m.events.push(Event{Type: EventSuspect, Member: e.Member})
			}
		case StateSuspect:
			if m.swim != nil {
				break
			}
			if silent >= m.cfg.DeadAfter {
				e.State, e.stateSince, e.deadRounds = StateDead, now, 0
				m.syncLocked(e)
				m.events.push(Event{Type: EventDead, Member: e.Member})
			}
		case StateDead, StateLeft:
			// A dead member still heard from (it challenges us: it is
			// alive, only deaf to us) is kept, so its news is still taken.
			if now.Sub(e.stateSince) >= reap && (e.State == StateLeft || (!isolated && now.Sub(e.challengedAt) >= reap && now.Sub(m.isolatedAt) >= reap)) {
				m.removeLocked(e)
				continue
			}
			at := e.stateSince
			if e.State == StateDead && e.challengedAt.After(at) {
				at = e.challengedAt
			}
			if e.State == StateDead && m.isolatedAt.After(at) {
				at = m.isolatedAt
			}
			due(at.Add(reap))
		}
		if !e.heardMulticast.IsZero() {
			if now.Sub(e.heardMulticast) >= m.cfg.SuspectAfter {
				e.heardMulticast = time.Time{}
				m.syncLocked(e)
			} else {
				due(e.heardMulticast.Add(m.cfg.SuspectAfter))
			}
		}
	}
	if soonest := now.Add(max(m.cfg.Heartbeat, m.cfg.SuspectAfter/2)); next.Before(soonest) {
		next = soonest
	}
	m.walkAt = next
}

// syncLocked brings the table's incremental indexes up to date with e
// after any change of its validation, state, address, group reception or
// presence in the table: the count of members by state, and the fan-out
// working view (validated alive and suspect members, sorted by id), which
// it changes by a binary search and one insert, delete or store, marking
// the published view stale. Every such change calls it, so neither a
// join nor Stats nor the view walks the table. It does not allocate
// unless the working view must grow.
func (m *membership) syncLocked(e *memberEntry) {
	present := e.validated && m.members[e.ID] == e
	var st MemberState
	if present {
		st = e.State
	}
	if st != e.counted {
		if e.counted != 0 {
			m.nState[e.counted]--
		}
		if st != 0 {
			m.nState[st]++
		}
		if e.counted == StateDead {
			delete(m.dead, e.ID)
		}
		if st == StateDead {
			m.dead[e.ID] = e
		}
		e.counted = st
	}
	in := present && (st == StateAlive || st == StateSuspect)
	noMC := in && e.heardMulticast.IsZero()
	if in == e.inView && (!in || e.viewAddr == e.Addr) && noMC == e.viewNoMC {
		return
	}
	if noMC != e.viewNoMC {
		if noMC {
			m.vNoMC++
		} else {
			m.vNoMC--
		}
		e.viewNoMC = noMC
	}
	i, found := slices.BinarySearch(m.vIDs, e.ID)
	switch {
	case in && !found:
		m.vIDs = slices.Insert(m.vIDs, i, e.ID)
		m.vAddrs = slices.Insert(m.vAddrs, i, e.Addr)
	case in:
		m.vAddrs[i] = e.Addr
	case found:
		m.vIDs = slices.Delete(m.vIDs, i, i+1)
		m.vAddrs = slices.Delete(m.vAddrs, i, i+1)
	}
	e.inView, e.viewAddr = in, e.Addr
	m.nLive.Store(int64(len(m.vIDs)))
	m.view.stale.Store(true)
}

// publishLocked publishes a copy of the working view if it changed since
// the last publication (viewCell.Load). Allocates then: O(N), once per
// read of a changed view, however many changes came in between.
func (m *membership) publishLocked() {
	if !m.view.stale.Load() {
		return
	}
	m.view.cur.Store(&destView{
		live:         slices.Clone(m.vAddrs),
		ids:          slices.Clone(m.vIDs),
		allMulticast: len(m.vIDs) > 0 && m.vNoMC == 0,
	})
	m.view.stale.Store(false)
}

// viewMember reports whether id is in the fan-out view and at which
// address, as the next Load will hold it, without publishing: a JOIN
// answer needs only that (every flush after it loads this view or a later
// one), and answering each ask of a join wave with an O(N) publication
// cost more than the rest of the wave.
func (m *membership) viewMember(id uint64) (netip.AddrPort, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	i, ok := slices.BinarySearch(m.vIDs, id)
	if !ok {
		return netip.AddrPort{}, false
	}
	return m.vAddrs[i], true
}

// liveMembers is the number of validated members alive or suspect, as
// the next view Load will hold them; lock-free, for readers that need only
// the mesh's size (treeDepth on every control frame), so they do not
// publish a view.
func (m *membership) liveMembers() int { return int(m.nLive.Load()) }

// liveLocked is the number of validated members alive or suspect.
func (m *membership) liveLocked() int { return m.nState[StateAlive] + m.nState[StateSuspect] }

// snapshot copies the validated members, sorted by id.
func (m *membership) snapshot() []Member {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Member, 0, m.validatedN)
	for _, e := range m.members {
		if e.validated {
			out = append(out, e.Member)
		}
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

// count fills the member counts of s from the table's incremental
// counters: O(1), however large the table.
func (m *membership) count(s *Stats) {
	m.mu.Lock()
	s.MembersUnvalidated = len(m.members) - m.validatedN
	s.MembersAlive, s.MembersSuspect = m.nState[StateAlive], m.nState[StateSuspect]
	s.MembersDead, s.MembersLeft = m.nState[StateDead], m.nState[StateLeft]
	m.mu.Unlock()
	s.MembersRefused = m.refused.Load()
	s.MembersEvicted = m.evictedUnv.Load() + m.evictedGone.Load()
	s.Vouched = m.vouchedN.Load()
}

// digestEntries fills m.digest with up to max validated members, rotating
// through the table so that every member is eventually gossiped in large
// meshes. Unvalidated members are never gossiped: a forged identity must
// not spread. Called under mu.
func (m *membership) digestEntries(max int) []codec.DigestEntry {
	m.digest = m.digest[:0]
	if m.validatedN == 0 || max <= 0 {
		return m.digest
	}
	if m.swim != nil {
		// Above DirectLimit, ALIVE goes to seeds and newcomers only: take
		// the next members of the machine's table, no sort.
		if m.swimCur >= m.swim.Len() {
			m.swimCur = 0
		}
		m.swimUps, m.swimCur = m.swim.AppendMembers(m.swimUps[:0], m.swimCur, max)
		for _, u := range m.swimUps {
			m.digest = append(m.digest, codec.DigestEntry{ID: u.ID, Epoch: u.Epoch, Incarnation: u.Incarnation, Addr: u.Addr, State: MemberState(u.State)})
		}
		return m.digest
	}
	ids := m.ids[:0]
	for id, e := range m.members {
		if e.validated {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	m.ids = ids
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

// unicastTargets lists where heartbeats go: every validated member alive
// or suspect. Called under mu.
func (m *membership) unicastTargets(dst []netip.AddrPort) []netip.AddrPort {
	for _, e := range m.members {
		if e.validated && (e.State == StateAlive || e.State == StateSuspect) {
			dst = append(dst, e.Addr)
		}
	}
	return dst
}

// Dead members are probed every heartbeat round for deadProbeRounds
// rounds, then every deadProbeEvery rounds until they are forgotten — and
// every round in which our high-water mark moved since their last probe:
// a member we declared dead may be one we cannot hear (an inbound-only
// cut on our side) that hears us, and the probe's mark is then its only
// news of what we publish; it must come within a heartbeat for the
// member to flag what it missed within the staleness bound.
const (
	deadProbeRounds = 8
	deadProbeEvery  = 4
)

// deadTargets lists, once per heartbeat round, the addresses of validated
// members declared dead that are due a probe. They get a challenge, not a
// heartbeat: the address may have been given to someone else since, and a
// challenge answered is all a healed partition needs (the RESPONSE brings
// the member back). Called under mu.
func (m *membership) deadTargets(dst []netip.AddrPort, hwm uint64) []netip.AddrPort {
	for _, e := range m.dead { // not the whole table: only its dead
		e.deadRounds++
		if e.deadRounds <= deadProbeRounds || e.deadRounds%deadProbeEvery == 0 || hwm > e.probedHWM {
			e.probedHWM = hwm
			dst = append(dst, e.Addr)
		}
	}
	return dst
}

// challengedBy records that a validated member challenged us from its
// address: it is alive, but it declared us dead (it cannot hear us). Its
// state does not change — a member that cannot hear us is rightly out of
// our fan-out and flow control, and coming back takes a RESPONSE — but it
// is not forgotten while it keeps doing so, so its news is still taken.
func (m *membership) challengedBy(id uint64, now time.Time) {
	m.mu.Lock()
	if e := m.members[id]; e != nil && e.validated {
		e.challengedAt = now
	}
	m.mu.Unlock()
}

// validatedAddr returns a validated, not departed member's address: the
// only addresses repairs and acknowledgements are sent to.
func (m *membership) validatedAddr(id uint64) (netip.AddrPort, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.members[id]
	if !ok || !e.validated || e.State == StateLeft {
		return netip.AddrPort{}, false
	}
	return e.Addr, true
}

// repairBudget returns a validated member's address and how many bytes of
// retransmissions it may be sent now. Each member has its own bucket,
// RetransmitBuffer/8 bytes deep, refilled at RetransmitBuffer/4 bytes per
// second: one member asking for everything cannot take the global
// RetransmitRate from the others, and a member's repairs are bounded
// whatever it asks for. Unvalidated or departed members get nothing.
func (m *membership) repairBudget(id uint64, now time.Time) (netip.AddrPort, int, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.members[id]
	if !ok || !e.validated || e.State == StateLeft {
		return netip.AddrPort{}, 0, false
	}
	burst := float64(m.cfg.RetransmitBuffer / 8)
	if e.repairAt.IsZero() {
		e.repairTokens, e.repairAt = burst, now
	}
	e.repairTokens = min(burst, e.repairTokens+max(now.Sub(e.repairAt).Seconds(), 0)*float64(m.cfg.RetransmitBuffer/4))
	e.repairAt = now
	return e.Addr, int(e.repairTokens), true
}

// repairSpent charges bytes of retransmissions to a member's budget.
func (m *membership) repairSpent(id uint64, bytes int) {
	if bytes == 0 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.members[id]; ok {
		e.repairTokens = max(e.repairTokens-float64(bytes), 0)
	}
}
