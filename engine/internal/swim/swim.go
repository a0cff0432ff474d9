package swim

import (
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"
)

// State is a member's liveness; the values match codec.MemberState.
type State uint8

// Member states.
const (
	Alive   State = 1
	Suspect State = 2
	Dead    State = 3
	Left    State = 4
)

// Update is one assertion about a member: it is in State at (Epoch,
// Incarnation) and lives at Addr. From is the node that asserted it (for
// a suspicion: who failed to reach it), so confirmations can be counted
// per independent witness.
type Update struct {
	ID          uint64
	Epoch       uint64
	Incarnation uint64
	Addr        netip.AddrPort
	State       State
	From        uint64
}

// newer reports whether (e1, i1) is after (e2, i2).
func newer(e1, i1, e2, i2 uint64) bool { return e1 > e2 || (e1 == e2 && i1 > i2) }

// Config holds the protocol's tunables. Zero fields are not defaulted
// here; the engine passes complete values.
type Config struct {
	Period           time.Duration // protocol period: one probe each, at local health 0
	ProbeTimeout     time.Duration // wait for a direct ack before asking others, at local health 0
	IndirectProbes   int           // k: members asked to probe on our behalf
	SuspicionMult    int           // α: shortest suspicion = α·max(1, log10 N)·Period
	SuspicionMaxMult int           // β: longest suspicion = β × shortest
	RetransmitMult   int           // λ: each update is sent λ·ceil(log10(N+1)) times
	AwarenessMax     int           // Lifeguard local health multiplier cap
	PushPullMin      time.Duration // shortest interval between periodic push-pulls
	PushPullPer      time.Duration // push-pull interval per member (keeps its bytes per second flat in N)
	// PushPullMax caps the steady interval (0: no cap). With push-pulls
	// that begin with a digest (the driver's), agreeing tables cost one
	// small frame, so the interval need not grow with N to keep bytes
	// flat; a member some node missed is then learned within PushPullMax.
	PushPullMax time.Duration
	CatchUp     int // periods of frequent push-pull after a member joins
	MaxRelays   int // indirect probes relayed for others at once
	QueueCap    int // queued updates beyond which news of a live member is left to push-pull
	// GossipMax bounds the extra pings a period sends, to random members,
	// while more updates are queued than UpdatesPerFrame: each carries a
	// frame of updates and its ack brings one back. Piggybacking on the
	// probe alone carries about two frames of news a period, so a burst
	// of hundreds of suspicions and refutations (a cold start on a
	// saturated host) took tens of periods to drain and the suspicions
	// outlived their timeouts. 0 disables it; with an empty queue nothing
	// extra is sent.
	GossipMax       int
	UpdatesPerFrame int           // updates one probe frame carries (the driver's frame size)
	SuspicionMin    time.Duration // floor of the shortest suspicion
}

// Kind says what an Action asks the driver to do.
type Kind uint8

// Action kinds.
const (
	// Ping: probe ID at Addr directly; its ack carries Seq.
	Ping Kind = iota + 1
	// PingReq: ask ID at Addr to probe Target at TargetAddr, acking Seq.
	PingReq
	// Ack: tell requester ID at Addr that Target answered probe Seq.
	Ack
	// Nack: tell requester ID at Addr that Target did not answer in time.
	Nack
	// PushPull: exchange full state with ID at Addr.
	PushPull
	// Changed: member ID is now State at Incarnation (apply, raise events).
	Changed
	// Refuted: this node's own incarnation is now Incarnation.
	Refuted
)

// Action is one decision for the driver.
type Action struct {
	Kind        Kind
	ID          uint64
	Addr        netip.AddrPort
	Target      uint64
	TargetAddr  netip.AddrPort
	Seq         uint64
	State       State
	Incarnation uint64
}

// Outcome is what Apply made of an update.
type Outcome uint8

// Outcomes of Apply.
const (
	Stale    Outcome = iota // old news or nothing to change
	Applied                 // taken (and queued to spread)
	Unknown                 // a member this machine does not hold: the driver validates it first
	Validate                // alive at a new epoch or address, or back from dead or left: validate first
)

const maxConfirm = 8 // independent suspicion confirmations remembered

// Suspects are probed ahead of the round-robin (Machine.urgent): at most
// maxUrgent waiting, each suspicion at most urgentTries times, the first
// urgentDelay periods after it began (gossip refutes most suspicions
// sooner: probing every suspect at once would aim every node's probes at
// the members that are slow already), again a period after an ack that
// did not refute.
const (
	maxUrgent   = 64
	urgentTries = 3
	urgentDelay = 4
)

type urgentProbe struct {
	id uint64
	at time.Time // not before
}

// catchUpEvery is the push-pull interval, in periods, while members join.
const catchUpEvery = 4

// catchUpQuiet: push-pull slows to its steady interval only after this
// many in a row brought no news. One quiet push-pull proved little in a
// cold start: its partner's table may have lacked the same stragglers,
// whose news then reached the node only at the steady interval (N/2
// periods; measured at N=1000: 2 members unknown at one node for 40 s+).
const catchUpQuiet = 1

type member struct {
	Update
	ord       int32     // index in Machine.order
	suspStart time.Time // when the current suspicion began
	confirm   [maxConfirm]uint64
	nconf     int
	tries     uint8 // urgent probes of the current suspicion
}

type probe struct {
	active   bool
	indirect bool // indirect probes sent
	seq      uint64
	target   uint64
	timeout  time.Time // direct ack deadline
	end      time.Time // the probe fails if no ack by then
	asked    int       // indirect probes sent: nacks expected
	nacks    int
}

type relay struct {
	used      bool
	seq       uint64 // our probe of the target
	reqSeq    uint64 // the requester's sequence
	requester uint64
	reqAddr   netip.AddrPort
	target    uint64
	deadline  time.Time
}

// Machine is one node's SWIM state. Not safe for concurrent use.
type Machine struct {
	cfg       Config
	self      Update
	members   []member
	at        map[uint64]int32 // id → index in members
	order     []int32          // probe order: indexes into members
	cursor    int
	rng       *rand.Rand
	seq       uint64
	probe     probe
	relays    []relay
	nextProbe time.Time
	nextPP    time.Time
	catchUp   time.Time // frequent push-pull until then
	news      bool      // a member was added or learned of since the last push-pull
	quiet     int       // push-pulls in a row since the last news
	synced    bool      // a push-pull answer arrived since the last reset
	suspects  int
	suspNext  time.Time // no suspicion ends before this (Tick walks the suspects only then)
	awareness int
	gossiped  uint64 // extra pings sent for a deep queue (gossipLocked)
	q         queue
	dropped   uint64
	scratch   []int32
	urgent    []urgentProbe // suspects to probe next, in time order
}

// New returns a machine for node self (its id, epoch, incarnation and
// address in self). seed drives its random choices. It allocates.
func New(cfg Config, self Update, seed uint64) *Machine {
	m := &Machine{cfg: cfg, self: self, at: make(map[uint64]int32),
		rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	m.self.State = Alive
	m.q.init()
	m.relays = make([]relay, max(cfg.MaxRelays, 1))
	return m
}

// enqueue queues u for piggybacking. Past QueueCap queued updates, news
// that a member joined is not queued: in a join wave every node
// learns every member, and N joins retransmitted λ·log N times by every
// node would keep probe frames full for O(N) periods, while push-pull
// spreads the same news in O(log N). Suspicions, deaths, leaves and
// refutations (a higher incarnation: Apply) are always queued, at most one
// per member.
func (m *Machine) enqueue(u Update) {
	if u.State == Alive && u.ID != m.self.ID && m.q.len() >= m.cfg.QueueCap {
		if _, queued := m.q.at[u.ID]; !queued {
			m.dropped++
			return
		}
	}
	m.q.push(u)
}

// Dropped counts alive news left to push-pull because the queue was full.
func (m *Machine) Dropped() uint64 { return m.dropped }

// Len is the number of members held (any state).
func (m *Machine) Len() int { return len(m.members) }

// Awareness is the local health multiplier: 0 healthy .. AwarenessMax.
func (m *Machine) Awareness() int { return m.awareness }

// Queued is the number of updates waiting to be piggybacked.
func (m *Machine) Queued() int { return m.q.len() }

// Incarnation is this node's own incarnation.
func (m *Machine) Incarnation() uint64 { return m.self.Incarnation }

// SetIncarnation raises this node's incarnation (the driver refuted by
// other means); lower values are ignored.
func (m *Machine) SetIncarnation(inc uint64) {
	if inc > m.self.Incarnation {
		m.self.Incarnation = inc
		m.enqueue(m.self)
	}
}

// Get returns what the machine holds about id.
func (m *Machine) Get(id uint64) (Update, bool) {
	i, ok := m.at[id]
	if !ok {
		return Update{}, false
	}
	return m.members[i].Update, true
}

// retransmits is how many frames each update goes out in.
func (m *Machine) retransmits() int {
	return m.cfg.RetransmitMult * int(math.Ceil(math.Log10(float64(len(m.members)+2))))
}

// suspDue lowers suspNext to e's suspicion deadline: a new suspicion,
// or a confirmation that shortened one.
func (m *Machine) suspDue(e *member) {
	if d := e.suspStart.Add(m.suspicionTimeout(e.nconf)); m.suspects == 1 || d.Before(m.suspNext) {
		m.suspNext = d
	}
}

func (m *Machine) scaled(d time.Duration) time.Duration {
	return d * time.Duration(m.awareness+1)
}

// suspicionTimeout is Lifeguard's dynamic suspicion timeout for a
// suspicion with conf independent confirmations: the longest timeout with
// none, shrinking logarithmically to the shortest at k confirmations.
func (m *Machine) suspicionTimeout(conf int) time.Duration {
	n := float64(len(m.members) + 1)
	lo := max(time.Duration(float64(m.cfg.SuspicionMult)*max(1, math.Log10(n))*float64(m.cfg.Period)), m.cfg.SuspicionMin)
	hi := time.Duration(m.cfg.SuspicionMaxMult) * lo
	k := min(m.cfg.IndirectProbes, len(m.members)-1)
	if k < 1 || conf >= k {
		return lo
	}
	f := math.Log(float64(conf)+1) / math.Log(float64(k)+1)
	return max(lo, hi-time.Duration(f*float64(hi-lo)))
}

// Add takes a member the driver validated, new or at a new epoch or
// address, as alive, and queues the news. It allocates when the member is
// new and the tables must grow.
func (m *Machine) Add(u Update, now time.Time) {
	u.State, u.From = Alive, m.self.ID
	if u.ID == m.self.ID {
		return
	}
	if i, ok := m.at[u.ID]; ok {
		e := &m.members[i]
		if e.State == Suspect {
			m.suspects--
		}
		e.Update, e.nconf = u, 0
		m.enqueue(u)
		return
	}
	i := int32(len(m.members))
	m.members = append(m.members, member{Update: u})
	m.at[u.ID] = i
	// Insert at a random place in the probe order, so a joiner is probed
	// within one round and the order stays a shuffle.
	m.order = append(m.order, i)
	j := m.rng.IntN(len(m.order))
	last := len(m.order) - 1
	m.order[j], m.order[last] = m.order[last], m.order[j]
	m.members[m.order[j]].ord = int32(j)
	m.members[m.order[last]].ord = int32(last)
	m.enqueue(u)
	m.catchUp = now.Add(time.Duration(m.cfg.CatchUp) * m.cfg.Period)
	m.news = true
}

// Announce queues the news that member id (held, alive) is alive,
// whatever the queue holds: news that a member took the address of
// another one (a node restarted there with a new id), which QueueCap
// would leave to push-pull. Unlike a join wave's news, such news is
// bounded by the restarts, and every node that holds the old id at that
// address needs it: push-pull alone took tens of periods to bring it to
// the last nodes (a keyed 10% restart wave at N=1000 after TestScale's
// publishing: 23-33 periods until every node knew every newcomer). It
// does not allocate when the queue has room.
func (m *Machine) Announce(id uint64) {
	if i, ok := m.at[id]; ok && m.members[i].State == Alive {
		m.q.push(m.members[i].Update)
	}
}

// Learned records that an update named a member this machine does not
// hold yet (the driver validates it first). Like a join, it keeps
// push-pull at the catch-up interval: a node push-pulls every
// catchUpEvery periods until one push-pull interval passes without news,
// so a cold start's stragglers are learned from the tables of others
// rather than after the steady interval (N/2 periods); catchUpQuiet
// quiet push-pulls end the catch-up. It does not pull
// in a push-pull already scheduled, so one join in a steady mesh does not
// make every member push-pull at once.
func (m *Machine) Learned() { m.news = true }

// Remove forgets a member (the driver reaped or evicted it).
func (m *Machine) Remove(id uint64) {
	i, ok := m.at[id]
	if !ok {
		return
	}
	if m.members[i].State == Suspect {
		m.suspects--
	}
	m.suspNext = time.Time{} // a smaller table shortens every suspicion: walk at the next Tick
	if m.probe.active && m.probe.target == id {
		m.probe.active = false
	}
	m.q.drop(id)
	// Take it out of the probe order (swap with the last).
	o := m.members[i].ord
	lastO := int32(len(m.order) - 1)
	m.order[o] = m.order[lastO]
	m.members[m.order[o]].ord = o
	m.order = m.order[:lastO]
	// Swap-delete from members, fixing the moved member's indexes.
	last := int32(len(m.members) - 1)
	delete(m.at, id)
	if i != last {
		m.members[i] = m.members[last]
		m.at[m.members[i].ID] = i
		m.order[m.members[i].ord] = i
	}
	m.members = m.members[:last]
	if m.cursor > len(m.order) {
		m.cursor = len(m.order)
	}
}

// Apply judges an update received from the mesh (a piggybacked update or
// a push-pull entry) and appends what follows from it to dst. A suspicion
// or death of this node raises its incarnation (Refuted) and queues the
// refutation. Unknown and Validate ask the driver to validate the address
// first: gossip alone never adds, moves or revives a member. It does not
// allocate when dst has the room.
func (m *Machine) Apply(u Update, now time.Time, dst []Action) (Outcome, []Action) {
	if u.ID == m.self.ID {
		if u.State == Left && u.Epoch == m.self.Epoch {
			// Said to have left while running: a member retired this
			// node for a newcomer said to have taken its address (gossip
			// that a key holder got wrong, or forged). A higher
			// incarnation than any held makes the mesh challenge our
			// address again (Validate), and our RESPONSE brings us back.
			m.self.Incarnation = max(m.self.Incarnation, u.Incarnation) + 1
			m.q.push(m.self)
			return Applied, append(dst, Action{Kind: Refuted, Incarnation: m.self.Incarnation})
		}
		if (u.State != Suspect && u.State != Dead) || u.Epoch != m.self.Epoch {
			return Stale, dst
		}
		if u.Incarnation < m.self.Incarnation {
			// An accusation older than our incarnation: whoever made it
			// never heard that incarnation (a member that validated us
			// directly starts from 0), so tell the mesh again.
			m.q.push(m.self)
			return Stale, dst
		}
		m.self.Incarnation = u.Incarnation + 1
		m.q.push(m.self)
		m.awareness = min(m.awareness+1, m.cfg.AwarenessMax)
		return Applied, append(dst, Action{Kind: Refuted, Incarnation: m.self.Incarnation})
	}
	i, ok := m.at[u.ID]
	if !ok {
		if u.State == Alive {
			return Unknown, dst
		}
		return Stale, dst
	}
	e := &m.members[i]
	switch u.State {
	case Alive:
		if !newer(u.Epoch, u.Incarnation, e.Epoch, e.Incarnation) {
			return Stale, dst
		}
		if e.State == Dead || e.State == Left || u.Epoch != e.Epoch || u.Addr != e.Addr {
			return Validate, dst
		}
		e.Incarnation = u.Incarnation
		if e.State != Suspect {
			// A higher incarnation is a refutation somewhere: it must
			// spread at least as well as the suspicion it answers, which
			// is always queued. Through the QueueCap (a join wave's full
			// queues) it spread only from nodes that had held the
			// suspicion, and lost the race: at N=1000, 64 members stayed
			// suspected at hundreds of nodes for 10 s, then died.
			m.q.push(e.Update)
			return Applied, dst
		}
		e.State, e.nconf = Alive, 0
		m.suspects--
		m.q.push(e.Update) // a refutation always spreads, queue full or not
		return Applied, append(dst, Action{Kind: Changed, ID: e.ID, Addr: e.Addr, State: Alive, Incarnation: e.Incarnation})
	case Suspect:
		if u.Epoch != e.Epoch || u.Incarnation < e.Incarnation || e.State == Dead || e.State == Left {
			return Stale, dst
		}
		if e.State == Suspect && u.Incarnation == e.Incarnation {
			if !m.confirmLocked(e, u.From) {
				return Stale, dst
			}
			m.suspDue(e)
			m.enqueue(u) // a confirmation spreads too
			return Applied, dst
		}
		return Applied, m.suspect(e, u.Incarnation, u.From, now, dst)
	case Left:
		// Left is final for the epoch: nothing refutes it (a member that
		// left does not come back in that epoch, and one that took its
		// address retired it), so it is taken whatever its incarnation.
		// A member whose suspicion was refuted here, at a higher
		// incarnation than the retiring node held, would otherwise stay
		// listed alive here until other news retired it (in a restart
		// wave after a storm of suspicions, every member's incarnation
		// differs from node to node).
		if u.Epoch != e.Epoch || e.State == Left {
			return Stale, dst
		}
		return Applied, m.settle(e, Left, max(u.Incarnation, e.Incarnation), dst)
	case Dead:
		if u.Epoch != e.Epoch || u.Incarnation < e.Incarnation || e.State == Left || e.State == Dead {
			return Stale, dst
		}
		return Applied, m.settle(e, Dead, u.Incarnation, dst)
	}
	return Stale, dst
}

// confirmLocked records an independent confirmation of e's suspicion.
func (m *Machine) confirmLocked(e *member, from uint64) bool {
	if from == e.From || from == e.ID {
		return false
	}
	for _, c := range e.confirm[:e.nconf] {
		if c == from {
			return false
		}
	}
	if e.nconf == maxConfirm {
		return false
	}
	e.confirm[e.nconf] = from
	e.nconf++
	return true
}

func (m *Machine) suspect(e *member, inc, from uint64, now time.Time, dst []Action) []Action {
	if e.State != Suspect {
		m.suspects++
	}
	e.State, e.Incarnation, e.From, e.nconf, e.suspStart = Suspect, inc, from, 0, now
	e.tries = 0
	m.suspDue(e)
	m.urgentLocked(e, now.Add(urgentDelay*m.cfg.Period))
	m.enqueue(e.Update)
	return append(dst, Action{Kind: Changed, ID: e.ID, Addr: e.Addr, State: Suspect, Incarnation: inc})
}

func (m *Machine) settle(e *member, st State, inc uint64, dst []Action) []Action {
	if e.State == Suspect {
		m.suspects--
	}
	e.State, e.Incarnation, e.nconf = st, inc, 0
	e.From = m.self.ID
	m.enqueue(e.Update)
	if m.probe.active && m.probe.target == e.ID {
		m.probe.active = false
	}
	return append(dst, Action{Kind: Changed, ID: e.ID, Addr: e.Addr, State: st, Incarnation: inc})
}

// Leave records a graceful leave of a member the driver checked.
func (m *Machine) Leave(id, epoch uint64, dst []Action) []Action {
	i, ok := m.at[id]
	if !ok {
		return dst
	}
	e := &m.members[i]
	if e.Epoch != epoch || e.State == Left {
		return dst
	}
	return m.settle(e, Left, e.Incarnation, dst)
}

// urgentLocked queues a probe of suspect e ahead of the round-robin. A
// node that holds a suspicion, from gossip or its own failed probe, asks
// the suspect itself at its next probe: the ping carries the suspicion
// (the driver's buddy rule), so a live suspect's ack brings its
// refutation straight back, instead of this node waiting for gossip to
// carry it (in a cold start's storm of suspicions, for the longest
// suspicion timeout); a dead one fails the probe, which confirms the
// suspicion. No extra frames: the urgent probe takes a round-robin slot.
func (m *Machine) urgentLocked(e *member, at time.Time) {
	if e.tries >= urgentTries || len(m.urgent) >= maxUrgent {
		return
	}
	e.tries++
	// Keep the queue in time order (re-queued entries are due sooner).
	i := len(m.urgent)
	for i > 0 && m.urgent[i-1].at.After(at) {
		i--
	}
	m.urgent = slices.Insert(m.urgent, i, urgentProbe{id: e.ID, at: at})
}

// nextTarget returns the next member to probe: a suspect waiting for an
// urgent probe, else the next in the shuffled
// round-robin, reshuffling at the end of each round; -1 when nobody is
// probeable.
func (m *Machine) nextTarget(now time.Time) int32 {
	for len(m.urgent) > 0 && !now.Before(m.urgent[0].at) {
		id := m.urgent[0].id
		copy(m.urgent, m.urgent[1:]) // at most maxUrgent: no allocation
		m.urgent = m.urgent[:len(m.urgent)-1]
		if i, ok := m.at[id]; ok && m.members[i].State == Suspect {
			return i
		}
	}
	for tries := 0; tries <= len(m.order); tries++ {
		if m.cursor >= len(m.order) {
			m.cursor = 0
			m.rng.Shuffle(len(m.order), func(a, b int) {
				m.order[a], m.order[b] = m.order[b], m.order[a]
			})
			for o, i := range m.order {
				m.members[i].ord = int32(o)
			}
		}
		if len(m.order) == 0 {
			return -1
		}
		i := m.order[m.cursor]
		m.cursor++
		if s := m.members[i].State; s == Alive || s == Suspect {
			return i
		}
	}
	return -1
}

// pickOthers fills m.scratch with up to k random live members other than
// skip.
func (m *Machine) pickOthers(k int, skip uint64) []int32 {
	m.scratch = m.scratch[:0]
	n := len(m.members)
	if n == 0 {
		return m.scratch
	}
	for tries := 0; tries < 3*k+3 && len(m.scratch) < k; tries++ {
		i := int32(m.rng.IntN(n))
		e := &m.members[i]
		if e.ID == skip || e.State != Alive {
			continue
		}
		dup := false
		for _, j := range m.scratch {
			dup = dup || j == i
		}
		if !dup {
			m.scratch = append(m.scratch, i)
		}
	}
	return m.scratch
}

func (m *Machine) pushPullInterval() time.Duration {
	d := max(m.cfg.PushPullMin, time.Duration(len(m.members))*m.cfg.PushPullPer)
	if m.cfg.PushPullMax > 0 {
		d = min(d, max(m.cfg.PushPullMax, m.cfg.PushPullMin))
	}
	return d
}

// Tick runs every timer that is due at now and appends the resulting
// actions to dst. Call it again by Next. It does not allocate when dst
// has the room.
func (m *Machine) Tick(now time.Time, dst []Action) []Action {
	p := &m.probe
	if p.active && !p.indirect && !now.Before(p.timeout) {
		p.indirect = true
		ti := m.at[p.target]
		t := &m.members[ti]
		for _, i := range m.pickOthers(m.cfg.IndirectProbes, p.target) {
			o := &m.members[i]
			dst = append(dst, Action{Kind: PingReq, ID: o.ID, Addr: o.Addr, Target: t.ID, TargetAddr: t.Addr, Seq: p.seq})
			p.asked++
		}
	}
	if p.active && !now.Before(p.end) {
		// Failed: no ack, direct or relayed. Lifeguard: missing nacks
		// mean our own links may be at fault, so local health worsens
		// for them too.
		p.active = false
		m.awareness = min(m.awareness+1+(p.asked-p.nacks), m.cfg.AwarenessMax)
		switch t := &m.members[m.at[p.target]]; t.State {
		case Alive:
			dst = m.suspect(t, t.Incarnation, m.self.ID, now, dst)
			// Lifeguard's buddy system, at once: a ping that carries the
			// suspicion (the driver puts it first), so a member that is
			// only slow refutes now rather than when gossip reaches it.
			// Its ack answers no probe.
			m.seq++
			dst = append(dst, Action{Kind: Ping, ID: t.ID, Addr: t.Addr, Seq: m.seq})
		case Suspect:
			// Our own failed probe confirms someone else's suspicion,
			// and the others should hear of it: confirmations shorten
			// the suspicion everywhere.
			if m.confirmLocked(t, m.self.ID) {
				m.suspDue(t)
				m.q.push(Update{ID: t.ID, Epoch: t.Epoch, Incarnation: t.Incarnation, Addr: t.Addr, State: Suspect, From: m.self.ID})
			}
		}
	}
	if !p.active && !now.Before(m.nextProbe) {
		m.nextProbe = now.Add(m.scaled(m.cfg.Period))
		if i := m.nextTarget(now); i >= 0 {
			t := &m.members[i]
			m.seq++
			*p = probe{active: true, seq: m.seq, target: t.ID,
				timeout: now.Add(m.scaled(m.cfg.ProbeTimeout)), end: now.Add(m.scaled(m.cfg.Period))}
			dst = append(dst, Action{Kind: Ping, ID: t.ID, Addr: t.Addr, Seq: m.seq})
			dst = m.gossipLocked(t.ID, dst)
		}
	}
	for i := range m.relays {
		if r := &m.relays[i]; r.used && !now.Before(r.deadline) {
			r.used = false
			dst = append(dst, Action{Kind: Nack, ID: r.requester, Addr: r.reqAddr, Target: r.target, Seq: r.reqSeq})
		}
	}
	if m.suspects > 0 && !now.Before(m.suspNext) {
		// The earliest suspicion may end: walk them all, and note when
		// the next one does.
		next := time.Time{}
		for i := range m.members {
			e := &m.members[i]
			if e.State != Suspect {
				continue
			}
			if d := e.suspStart.Add(m.suspicionTimeout(e.nconf)); !now.Before(d) {
				dst = m.settle(e, Dead, e.Incarnation, dst)
			} else if next.IsZero() || d.Before(next) {
				next = d
			}
		}
		m.suspNext = next
	}
	if !now.Before(m.nextPP) && len(m.members) > 0 {
		interval := m.pushPullInterval()
		if m.news {
			m.quiet = 0
		} else {
			m.quiet++
		}
		switch {
		case !m.synced:
			interval = 2 * m.cfg.Period
		case now.Before(m.catchUp) || m.news || m.quiet < catchUpQuiet:
			interval = catchUpEvery * m.cfg.Period
		case m.quiet == catchUpQuiet:
			// The catch-up just ended: one more push-pull after the
			// shortest steady interval, for stragglers whose news came
			// after it (at N=1000 a few members stayed unknown at a few
			// nodes, who would otherwise wait N/2 periods).
			interval = m.cfg.PushPullMin
		}
		m.news = false
		m.nextPP = now.Add(interval)
		if o := m.pickOthers(1, m.self.ID); len(o) > 0 {
			e := &m.members[o[0]]
			dst = append(dst, Action{Kind: PushPull, ID: e.ID, Addr: e.Addr})
		}
	}
	return dst
}

// gossipLocked appends the period's extra pings (Config.GossipMax) when
// the update queue holds more than a frame: one per frame of queued
// updates, divided by the local health multiplier, to random members
// other than the probe's target. Their sequence 0 answers no probe: an ack to one is only its
// updates.
func (m *Machine) gossipLocked(target uint64, dst []Action) []Action {
	if m.cfg.GossipMax <= 0 || m.cfg.UpdatesPerFrame <= 0 {
		return dst
	}
	// Lifeguard: a node whose probes go unanswered may be the slow one
	// (its host saturated); it gossips less, as it probes less, so the
	// extra frames do not feed the overload that raised the suspicions.
	extra := min(m.q.len()/m.cfg.UpdatesPerFrame, m.cfg.GossipMax) / (m.awareness + 1)
	if extra <= 0 {
		return dst
	}
	for _, i := range m.pickOthers(extra, target) {
		o := &m.members[i]
		dst = append(dst, Action{Kind: Ping, ID: o.ID, Addr: o.Addr})
		m.gossiped++
	}
	return dst
}

// Gossiped counts the extra pings sent to spread a deep update queue.
func (m *Machine) Gossiped() uint64 { return m.gossiped }

// Next is when Tick next has something to do.
func (m *Machine) Next() time.Time {
	next := m.nextProbe
	if p := &m.probe; p.active {
		next = p.end
		if !p.indirect {
			next = p.timeout
		}
	}
	if len(m.members) > 0 && m.nextPP.Before(next) {
		next = m.nextPP
	}
	for i := range m.relays {
		if r := &m.relays[i]; r.used && r.deadline.Before(next) {
			next = r.deadline
		}
	}
	if m.suspects > 0 && m.suspNext.Before(next) {
		next = m.suspNext
	}
	return next
}

// HandleAck takes an ack of probe seq. Our own probe succeeds (local
// health improves); a probe relayed for another node is acknowledged to
// its requester.
func (m *Machine) HandleAck(seq uint64, dst []Action) []Action {
	if p := &m.probe; p.active && p.seq == seq {
		p.active = false
		m.awareness = max(m.awareness-1, 0)
		if i, ok := m.at[p.target]; ok && m.members[i].State == Suspect {
			// It answered but did not refute (it may not have validated
			// us yet, and then dropped the suspicion our ping carried):
			// ask again soon.
			m.urgentLocked(&m.members[i], p.end) // a period after it was sent
		}
		return dst
	}
	for i := range m.relays {
		if r := &m.relays[i]; r.used && r.seq == seq {
			r.used = false
			return append(dst, Action{Kind: Ack, ID: r.requester, Addr: r.reqAddr, Target: r.target, Seq: r.reqSeq})
		}
	}
	return dst
}

// HandleNack takes a relay's report that our indirect probe seq failed:
// the relay is alive, so the silence is the target's, not ours.
func (m *Machine) HandleNack(seq uint64) {
	if p := &m.probe; p.active && p.seq == seq && p.nacks < p.asked {
		p.nacks++
	}
}

// HandlePingReq takes a request from requester (at reqAddr) to probe
// target on its behalf. It probes target (a Ping action) and remembers to
// ack or nack the requester. Requests beyond MaxRelays in flight are
// dropped (false).
func (m *Machine) HandlePingReq(requester uint64, reqAddr netip.AddrPort, reqSeq, target uint64, now time.Time, dst []Action) ([]Action, bool) {
	i, ok := m.at[target]
	if !ok {
		return dst, false
	}
	for k := range m.relays {
		if r := &m.relays[k]; !r.used {
			m.seq++
			*r = relay{used: true, seq: m.seq, reqSeq: reqSeq, requester: requester, reqAddr: reqAddr,
				target: target, deadline: now.Add(m.scaled(m.cfg.ProbeTimeout))}
			t := &m.members[i]
			return append(dst, Action{Kind: Ping, ID: t.ID, Addr: t.Addr, Seq: m.seq}), true
		}
	}
	return dst, false
}

// Synced records that a push-pull answer arrived: the node holds the
// mesh's table, and periodic push-pull slows to its steady interval once
// the catch-up after the last join has passed.
func (m *Machine) Synced() { m.synced = true }

// Take appends up to max queued updates to dst for one outgoing frame,
// least-sent first. It does not allocate when dst has the room.
func (m *Machine) Take(dst []Update, max int) []Update {
	return m.q.take(dst, max, m.retransmits())
}

// AppendMembers appends the members held from the start-th on, up to max,
// to dst, and returns the next start (0 after the last): a push-pull
// walks its table in frames this way. It does not allocate when dst has
// the room.
func (m *Machine) AppendMembers(dst []Update, start, max int) ([]Update, int) {
	end := min(start+max, len(m.members))
	for i := start; i < end; i++ {
		dst = append(dst, m.members[i].Update)
	}
	if end >= len(m.members) {
		return dst, 0
	}
	return dst, end
}
