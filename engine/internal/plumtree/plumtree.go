package plumtree

import (
	"net/netip"
	"slices"
	"time"
)

// Peer is a member as this package knows it: id and validated address.
type Peer struct {
	ID   uint64
	Addr netip.AddrPort
}

// Entry names an origin's epoch and a sequence in it: the wire's tree
// entry (codec.TreeEntry).
type Entry struct {
	Origin, Epoch, Seq uint64
}

// Params are the tunables; every field must be positive.
type Params struct {
	AnnounceInterval time.Duration // shortest time between two IHAVE rounds
	GraftTimeout     time.Duration // announced frames missing this long are grafted for
	GraftGiveUp      time.Duration // a graft that brought nothing in this long is dropped
	PruneHold        time.Duration // at most one PRUNE per origin per hold
	MaxOrigins       int           // origins tracked; more are refused
	MaxPerRound      int           // IHAVE entries per round; the rest wait
	// Reannounce: an origin whose held mark advanced is announced again,
	// unchanged, every round for this long after, to the next peers in
	// turn: one round reaches only a few members, and a node no tree
	// reaches may hear of the frames only this way.
	Reannounce time.Duration
}

// MaxEager is the most peers that may graft onto this node for one
// origin, and the most tree children that may prune it; more are refused.
const MaxEager = 8

// Kind says what an Action asks the driver to do.
type Kind uint8

// Kinds of Action.
const (
	SendIHave Kind = iota + 1 // announce Entry (Seq = held) to a few lazy peers
	SendGraft                 // GRAFT To for Entry (Seq = first wanted)
)

// Action is a decision of Tick.
type Action struct {
	Kind  Kind
	To    Peer // SendGraft only
	Entry Entry
}

type origin struct {
	id, epoch    uint64
	held         uint64         // highest seq below which every frame arrived (as reported)
	announced    uint64         // held as of the last IHAVE entry
	changedAt    time.Time      // when announced last advanced
	dirty        bool           // in Machine.dirty
	lastFrom     netip.AddrPort // sender of the latest first copy
	parentHeld   uint64         // what the tree parent last said it holds (ParentHeld)
	parentHeldAt time.Time      // when; zero: never

	// Frames a lazy peer announced that are not held.
	wantSeq   uint64 // 0: none
	wantFrom  Peer
	wantSince time.Time
	graftedAt time.Time // zero until grafted
	wanting   bool      // in Machine.wants

	lastPrune  time.Time
	parentDups int            // DupFirstLow since the last PRUNE
	eager      [MaxEager]Peer // peers that grafted onto us
	nEager     int
	pruned     [MaxEager]Peer // tree children that pruned us
	nPruned    int
}

// Machine is one node's Plumtree peer state. The zero value is not
// usable: call New.
type Machine struct {
	p         Params
	origins   map[uint64]*origin
	dirty     []*origin // held advanced since announced
	wants     []*origin // announced frames not held
	lastRound time.Time
	reUntil   time.Time // some origin is re-announced until then
	refused   uint64
}

// New returns a Machine with p.
func New(p Params) *Machine {
	return &Machine{
		p:       p,
		origins: make(map[uint64]*origin),
		dirty:   make([]*origin, 0, 64),
		wants:   make([]*origin, 0, 64),
	}
}

// SetGraftTimeout changes GraftTimeout (the driver scales it with the
// tree's depth); wants already waiting keep their start time.
func (m *Machine) SetGraftTimeout(d time.Duration) { m.p.GraftTimeout = d }

// Refused counts entries refused because a table was at its cap.
func (m *Machine) Refused() uint64 { return m.refused }

// Len is the number of origins tracked.
func (m *Machine) Len() int { return len(m.origins) }

// get returns the origin's state at epoch, creating it (or moving it to a
// later epoch, which forgets the earlier one's wants) when room allows.
func (m *Machine) get(id, epoch uint64) *origin {
	o := m.origins[id]
	if o == nil {
		if len(m.origins) >= m.p.MaxOrigins {
			m.refused++
			return nil
		}
		o = &origin{id: id, epoch: epoch} // once per origin
		m.origins[id] = o
	}
	switch {
	case epoch < o.epoch:
		return nil
	case epoch > o.epoch:
		o.epoch, o.held, o.announced, o.wantSeq = epoch, 0, 0, 0
		o.parentHeld, o.parentHeldAt = 0, time.Time{}
		o.changedAt = time.Time{}
		o.graftedAt = time.Time{}
	}
	return o
}

// Held reports that a first copy of one of origin's frames came from
// from, and that every frame of origin's epoch up to held arrived (or was
// given up): the next IHAVE round announces it, and a want it covers is
// settled.
func (m *Machine) Held(id, epoch, held uint64, from netip.AddrPort) {
	o := m.get(id, epoch)
	if o == nil || epoch != o.epoch {
		return
	}
	o.lastFrom = from
	if held <= o.held {
		return
	}
	o.held = held
	if !o.dirty {
		o.dirty = true
		m.dirty = append(m.dirty, o)
	}
	if o.wantSeq != 0 && held >= o.wantSeq {
		o.wantSeq = 0
	}
}

// IHave records a lazy peer's announcement that it holds e.Origin's epoch
// up to e.Seq; held is what this node holds. Frames it lacks are grafted
// for if they do not arrive within GraftTimeout (Tick).
func (m *Machine) IHave(from Peer, e Entry, held uint64, now time.Time) {
	if e.Seq <= held {
		return
	}
	o := m.get(e.Origin, e.Epoch)
	if o == nil || e.Epoch != o.epoch {
		return
	}
	if held > o.held {
		o.held = held
	}
	if o.wantSeq == 0 {
		o.wantFrom, o.wantSince, o.graftedAt = from, now, time.Time{}
	}
	o.wantSeq = max(o.wantSeq, e.Seq)
	if !o.wanting {
		o.wanting = true
		m.wants = append(m.wants, o)
	}
}

// Tick runs the schedule at now: grafts for announced frames that have
// not arrived, and an IHAVE round when one is due. It appends its
// decisions to dst and returns the time it wants to be called again
// (zero: nothing pending).
func (m *Machine) Tick(now time.Time, dst []Action) ([]Action, time.Time) {
	var next time.Time
	later := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	keep := m.wants[:0]
	for _, o := range m.wants {
		switch {
		case o.wantSeq == 0:
			o.wanting = false
			continue
		case o.graftedAt.IsZero() && now.Sub(o.wantSince) >= m.p.GraftTimeout:
			dst = append(dst, Action{Kind: SendGraft, To: o.wantFrom, Entry: Entry{Origin: o.id, Epoch: o.epoch, Seq: o.held + 1}})
			o.graftedAt = now
		case !o.graftedAt.IsZero() && now.Sub(o.graftedAt) >= m.p.GraftGiveUp:
			// The graft brought nothing: the stream's own repair (NACKs,
			// then a Gap) answers for those frames; a later IHAVE wants
			// them again.
			o.wantSeq, o.wanting = 0, false
			continue
		}
		if o.graftedAt.IsZero() {
			later(o.wantSince.Add(m.p.GraftTimeout))
		} else {
			later(o.graftedAt.Add(m.p.GraftGiveUp))
		}
		keep = append(keep, o)
	}
	clear(m.wants[len(keep):])
	m.wants = keep

	if len(m.dirty) > 0 || now.Before(m.reUntil) {
		if due := m.lastRound.Add(m.p.AnnounceInterval); now.Before(due) {
			later(due)
		} else {
			dst = m.round(now, dst)
			if len(m.dirty) > 0 || now.Before(m.reUntil) {
				later(now.Add(m.p.AnnounceInterval))
			}
		}
	}
	return dst, next
}

// round is one IHAVE round: the origins whose held mark advanced, then
// those re-announced, at most MaxPerRound entries.
func (m *Machine) round(now time.Time, dst []Action) []Action {
	m.lastRound = now
	k := 0
	for _, o := range m.dirty {
		if k == m.p.MaxPerRound {
			break
		}
		k++
		o.dirty = false
		if o.held > o.announced {
			o.announced, o.changedAt = o.held, now
			m.reUntil = now.Add(m.p.Reannounce)
			dst = append(dst, Action{Kind: SendIHave, Entry: Entry{Origin: o.id, Epoch: o.epoch, Seq: o.held}})
		}
	}
	n := copy(m.dirty, m.dirty[k:])
	clear(m.dirty[n:])
	m.dirty = m.dirty[:n]
	if now.Before(m.reUntil) {
		for _, o := range m.origins {
			if k == m.p.MaxPerRound {
				break
			}
			if o.announced > 0 && o.changedAt.Before(now) && now.Sub(o.changedAt) < m.p.Reannounce {
				k++
				dst = append(dst, Action{Kind: SendIHave, Entry: Entry{Origin: o.id, Epoch: o.epoch, Seq: o.announced}})
			}
		}
	}
	return dst
}

// ParentHeld records that this node's tree parent for origin's epoch
// said, at now, that it holds every frame up to held (an IHAVE: in its
// rounds, or its answer to our NACK for frames it misses too, which it
// relays down once it has them).
func (m *Machine) ParentHeld(id, epoch, held uint64, now time.Time) {
	if o := m.get(id, epoch); o != nil && o.epoch == epoch {
		o.parentHeld, o.parentHeldAt = held, now
	}
}

// ParentHeldAt returns what the tree parent last said it holds of
// origin's current epoch, and when (zero: never, or not tracked).
func (m *Machine) ParentHeldAt(id uint64) (uint64, time.Time) {
	if o := m.origins[id]; o != nil {
		return o.parentHeld, o.parentHeldAt
	}
	return 0, time.Time{}
}

// FirstFrom is the sender of the latest first copy of origin's frames.
func (m *Machine) FirstFrom(id uint64) netip.AddrPort {
	if o := m.origins[id]; o != nil {
		return o.lastFrom
	}
	return netip.AddrPort{}
}

// Dup says which sender of a frame's two copies a PRUNE could go to.
type Dup uint8

// Kinds of duplicate.
const (
	DupKeep     Dup = iota // neither sender may be pruned (tree parent, origin)
	DupSender              // the second copy's sender is neither: prune it
	DupFirst               // the second came from the origin: prune the first copy's sender
	DupFirstLow            // the second came from the tree parent, which may have been a repair from its ring: prune the first copy's sender only after ParentDups of these
)

// ParentDups is how many duplicates from the tree parent, after a first
// copy from elsewhere, call for pruning that other sender: a repair the
// parent resends from its ring looks like a push, a real push repeats.
const ParentDups = 4

// GraftNow grafts, at once, the announcer of origin's frames that are
// wanted and not yet grafted for: the driver calls it when its repair of
// that origin gave up on the tree parent (the announcer holds the frames;
// the parent did not send them). ok is false when there is nothing to
// graft.
func (m *Machine) GraftNow(id uint64, now time.Time) (Action, bool) {
	o := m.origins[id]
	if o == nil || o.wantSeq == 0 || !o.graftedAt.IsZero() {
		return Action{}, false
	}
	o.graftedAt = now
	return Action{Kind: SendGraft, To: o.wantFrom, Entry: Entry{Origin: o.id, Epoch: o.epoch, Seq: o.held + 1}}, true
}

// Duplicate reports whether a second copy of one of origin's frames calls
// for a PRUNE (to the sender d names): at most one per origin per
// PruneHold, so that two senders are not both pruned before either takes
// effect.
func (m *Machine) Duplicate(id uint64, d Dup, now time.Time) bool {
	o := m.origins[id]
	if o == nil || d == DupKeep {
		return false
	}
	if d == DupFirstLow {
		if o.parentDups++; o.parentDups < ParentDups {
			return false
		}
	}
	if !o.lastPrune.IsZero() && now.Sub(o.lastPrune) < m.p.PruneHold {
		return false
	}
	o.lastPrune, o.parentDups = now, 0
	return true
}

// Graft records that from asked to be pushed e.Origin's frames: it is an
// eager child for that origin until the view changes or it prunes us. It
// reports false when the origin is unknown or the table is full.
func (m *Machine) Graft(from Peer, e Entry) bool {
	o := m.get(e.Origin, e.Epoch)
	if o == nil || e.Epoch != o.epoch {
		return false
	}
	o.nPruned = remove(o.pruned[:o.nPruned], from.Addr)
	if slices.ContainsFunc(o.eager[:o.nEager], func(p Peer) bool { return p.Addr == from.Addr }) {
		return true
	}
	if o.nEager == MaxEager {
		m.refused++
		return false
	}
	o.eager[o.nEager] = from
	o.nEager++
	return true
}

// Prune records that from no longer wants origin's frames from us: it
// leaves the grafted children, and is skipped as a tree child, until the
// view changes. It reports false when the table is full.
func (m *Machine) Prune(from Peer, id uint64) bool {
	o := m.origins[id]
	if o == nil {
		if len(m.origins) >= m.p.MaxOrigins {
			m.refused++
			return false
		}
		o = &origin{id: id}
		m.origins[id] = o
	}
	o.nEager = remove(o.eager[:o.nEager], from.Addr)
	if m.Pruned(id, from.Addr) {
		return true
	}
	if o.nPruned == MaxEager {
		m.refused++
		return false
	}
	o.pruned[o.nPruned] = from
	o.nPruned++
	return true
}

// Unprune undoes a prune by the tree child at addr for origin: it has
// since asked us for that origin's frames as its parent (views that
// disagreed when it pruned us agree now).
func (m *Machine) Unprune(id uint64, addr netip.AddrPort) {
	if o := m.origins[id]; o != nil {
		o.nPruned = remove(o.pruned[:o.nPruned], addr)
	}
}

// Eager returns the peers grafted onto this node for origin (a view of
// the machine's table, valid until its next call).
func (m *Machine) Eager(id uint64) []Peer {
	if o := m.origins[id]; o != nil {
		return o.eager[:o.nEager]
	}
	return nil
}

// Pruned reports whether the tree child at addr pruned us for origin.
func (m *Machine) Pruned(id uint64, addr netip.AddrPort) bool {
	o := m.origins[id]
	if o == nil {
		return false
	}
	for _, p := range o.pruned[:o.nPruned] {
		if p.Addr == addr {
			return true
		}
	}
	return false
}

// Wanting reports whether frames of origin announced by a lazy peer are
// awaited (for tests and the driver's stats).
func (m *Machine) Wanting(id uint64) bool {
	o := m.origins[id]
	return o != nil && o.wantSeq != 0
}

// Reset forgets every graft and prune: the view changed, and with it
// every node's tree; the new tree is tried first.
func (m *Machine) Reset() {
	for _, o := range m.origins {
		o.nEager, o.nPruned = 0, 0
		o.eager, o.pruned = [MaxEager]Peer{}, [MaxEager]Peer{}
	}
}

// remove deletes the peer at addr from s, returning the new length.
func remove(s []Peer, addr netip.AddrPort) int {
	k := 0
	for _, p := range s {
		if p.Addr != addr {
			s[k] = p
			k++
		}
	}
	clear(s[k:])
	return k
}
