package engine

import (
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/warpmesh/warpmesh/codec"
	"github.com/warpmesh/warpmesh/engine/internal/swim"
	"github.com/warpmesh/warpmesh/sockopt"
)

// Membership above DirectLimit: SWIM with Lifeguard.
//
// A mesh of DirectLimit members or fewer keeps the all-to-all heartbeat
// (heartbeat.go): lowest latency and the failure detection of Heartbeat,
// SuspectAfter and DeadAfter. Above it, every node heartbeating every
// member costs N-1 datagrams per node per round, so the member table
// switches to the SWIM state machine (engine/internal/swim): each node
// probes one member per Heartbeat, asks swimIndirectProbes others to probe
// it when the direct ack is late, suspects it when none answers, and
// declares it dead after a suspicion timeout that confirmations shorten.
// Membership news rides on the probe frames (PROBE, codec type 10), each
// update a bounded number of times, and a push-pull of the whole table
// (SYNC, type 11) with one random member, at join and then at an interval
// that grows with N, repairs whatever dissemination missed. A node's
// membership traffic is then a constant number of probe frames per period
// plus push-pull bytes that do not grow with N.
//
// The rules of address validation (validate.go) hold unchanged: the
// machine holds validated members only, a probe or a relayed probe goes
// to a validated address only, and an update naming a member that is new,
// moved or back is answered by a challenge, never by a probe.
//
// The machine lives in the member table, under its lock, because every
// decision it takes is a table change; the prober is its driver: the timer
// loop (it sleeps until the machine's next deadline), the PROBE and SYNC
// handlers beside the receive dispatcher, and the frames they send.

// prober drives the SWIM machine and the join push-pull. Its buffers are
// under mu; lock order is receiver → prober → membership.
type prober struct {
	n       *Node
	mu      sync.Mutex
	buf     []byte
	frames  [][]byte // SYNC parts of one push-pull
	msgs    []sockopt.Message
	acts    []swim.Action
	ups     []codec.Update
	digest  []codec.DigestEntry
	pending []netip.AddrPort
	sc      sealScratch
	wake    chan struct{}
	synced  atomic.Bool // a push-pull answer arrived: the joiner holds the table
	rng     *rand.Rand
	next    time.Time // join push-pull retry, under mu
}

func (p *prober) init(n *Node) {
	p.n = n
	p.buf = make([]byte, 0, n.cfg.MaxFrameSize)
	p.wake = make(chan struct{}, 1)
	p.rng = rand.New(rand.NewPCG(n.id, n.epoch))
	m := n.members
	m.selfEpoch, m.selfInc, m.wake = n.epoch, &n.inc, p.wake
	// The first push-pull waits a period: by then the seeds' greetings
	// have named members to ask, and a cold start does not make every
	// node ask the seeds at once.
	p.next = time.Now().Add(n.cfg.Heartbeat)
}

// swimConfig is the machine's configuration for cfg.
func swimConfig(cfg *config) swim.Config {
	return swim.Config{
		Period:           cfg.Heartbeat,
		ProbeTimeout:     cfg.Heartbeat / swimProbeTimeoutDiv,
		IndirectProbes:   swimIndirectProbes,
		SuspicionMult:    swimSuspicionMult,
		SuspicionMaxMult: swimSuspicionMaxMult,
		RetransmitMult:   swimRetransmitMult,
		AwarenessMax:     swimAwarenessMax,
		PushPullMin:      swimPushPullMinPeriods * cfg.Heartbeat,
		PushPullPer:      cfg.Heartbeat / swimPushPullPerMemberDiv,
		PushPullMax:      swimPushPullMaxPeriods * cfg.Heartbeat,
		CatchUp:          swimCatchUpPeriods,
		MaxRelays:        swimMaxRelays,
		QueueCap:         swimQueueCap,
		SuspicionMin:     cfg.DeadAfter,
		GossipMax:        swimGossipMax,
		UpdatesPerFrame:  probeRoom(cfg),
	}
}

// run is the probe loop: it runs the machine's timers and the join
// push-pull, then sleeps until the next deadline or a wake-up (the mode
// switched, a relay started, the first member was validated).
func (p *prober) run() {
	n := p.n
	defer n.wg.Done()
	t := time.NewTimer(n.cfg.Heartbeat)
	defer t.Stop()
	for {
		now := time.Now()
		p.mu.Lock()
		var next time.Time
		p.acts, next = n.members.swimTick(now, p.acts[:0])
		p.sendLocked(p.acts, now)
		p.askPendingLocked(now)
		if !p.synced.Load() {
			if !now.Before(p.next) {
				if to, ok := n.members.randomValidated(p.rng); ok {
					p.sendSyncLocked(codec.SyncPush, to)
					p.next = now.Add(joinSyncRetry * n.cfg.Heartbeat)
				}
			}
			if next.IsZero() || p.next.Before(next) {
				next = p.next
			}
		}
		p.mu.Unlock()
		d := n.cfg.Heartbeat
		if !next.IsZero() {
			d = min(max(time.Until(next), swimTimerFloor), d)
		}
		t.Reset(d)
		select {
		case <-n.ctx.Done():
			return
		case <-p.wake:
			if !t.Stop() {
				<-t.C
			}
		case <-t.C:
		}
	}
}

// askPendingLocked challenges members heard of but not validated yet, a
// batch per wake-up, each at most once per period: a push-pull names up to
// N of them at once, more than the validator's third-party burst, and the
// rest would otherwise wait for the next mention. The challenges share
// the validator's third-party rate and per-address limits.
func (p *prober) askPendingLocked(now time.Time) {
	n := p.n
	p.pending = n.members.pendingDue(p.pending[:0], swimAskBatch, now)
	size := codec.HeaderLen + codec.ChallengeLen + codec.TagLen
	for _, a := range p.pending {
		credit := size
		n.val.challenge(a, false, &credit, now)
	}
}

func (p *prober) kick() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// sendLocked sends the frames the machine asked for.
func (p *prober) sendLocked(acts []swim.Action, now time.Time) {
	for i := range acts {
		a := &acts[i]
		switch a.Kind {
		case swim.Ping:
			p.sendProbeLocked(a.Addr, codec.Probe{Kind: codec.ProbePing, Seq: a.Seq, Target: a.ID})
		case swim.PingReq:
			p.sendProbeLocked(a.Addr, codec.Probe{Kind: codec.ProbePingReq, Seq: a.Seq, Target: a.Target, TargetAddr: a.TargetAddr})
		case swim.Ack:
			p.sendProbeLocked(a.Addr, codec.Probe{Kind: codec.ProbeAck, Seq: a.Seq, Target: a.Target})
		case swim.Nack:
			p.sendProbeLocked(a.Addr, codec.Probe{Kind: codec.ProbeNack, Seq: a.Seq, Target: a.Target})
		case swim.PushPull:
			if p.synced.Load() {
				p.sendDigestLocked(a.Addr) // the table only if the peer's differs
			} else {
				p.sendSyncLocked(codec.SyncPush, a.Addr)
			}
		case swim.Refuted:
			raiseInc(&p.n.inc, a.Incarnation)
		}
	}
}

// raiseInc sets inc to at least v.
func raiseInc(inc *atomic.Uint64, v uint64) {
	for {
		cur := inc.Load()
		if cur >= v || inc.CompareAndSwap(cur, v) {
			return
		}
	}
}

// refuteFromStranger reads the updates of an authenticated ping from a
// member not validated yet and applies those about this node (a
// suspicion to refute); the rest waits for the sender's validation.
func (p *prober) refuteFromStranger(h *codec.Header, rest []byte, now time.Time) {
	n := p.n
	for i := 0; i < int(h.Count); i++ {
		u, m, err := codec.ParseUpdate(rest)
		if err != nil {
			return
		}
		rest = rest[m:]
		if u.ID != n.id {
			continue
		}
		if inc, _ := n.members.update(&u, false, now); inc != 0 {
			raiseInc(&n.inc, inc)
		}
	}
}

// probeRoom is how many membership updates one PROBE frame carries.
func probeRoom(cfg *config) int {
	return (cfg.MaxFrameSize - codec.HeaderLen - codec.ProbeFixedLen - codec.TagLen) / codec.UpdateLen
}

// sendProbeLocked sends one PROBE frame to a validated address, with as
// many queued membership updates as fit. It does not allocate.
func (p *prober) sendProbeLocked(to netip.AddrPort, pr codec.Probe) {
	n := p.n
	room := probeRoom(n.cfg)
	buddy := uint64(0)
	if pr.Kind == codec.ProbePing {
		buddy = pr.Target
	}
	p.ups = n.members.takeUpdates(p.ups[:0], room, buddy)
	hdr := n.controlHeader(codec.TypeProbe)
	hdr.Count = uint16(len(p.ups))
	hdr.PayloadLen = uint16(codec.ProbePayloadLen(len(p.ups)))
	b := codec.AppendHeader(p.buf[:0], &hdr)
	b = codec.AppendProbe(b, &pr)
	for i := range p.ups {
		b = codec.AppendUpdate(b, &p.ups[i])
	}
	b = n.sealFrame(b, &hdr, &p.sc)
	p.buf = b
	p.msgs = append(p.msgs[:0], sockopt.Message{Buf: b, Addr: to})
	n.write(p.msgs)
}

// ackStranger answers a ping from a node not validated yet (admit) at the
// address it came from: an ack with no updates, if credit (bytes, from
// the ping's size) covers it. It does not allocate.
func (p *prober) ackStranger(to netip.AddrPort, seq uint64, credit *int) {
	n := p.n
	size := codec.HeaderLen + codec.ProbeFixedLen
	if n.sealing() {
		size += codec.TagLen
	}
	if *credit < size || !to.IsValid() {
		return
	}
	*credit -= size
	p.mu.Lock()
	defer p.mu.Unlock()
	hdr := n.controlHeader(codec.TypeProbe)
	hdr.PayloadLen = uint16(codec.ProbePayloadLen(0))
	b := codec.AppendHeader(p.buf[:0], &hdr)
	b = codec.AppendProbe(b, &codec.Probe{Kind: codec.ProbeAck, Seq: seq, Target: n.id})
	b = n.sealFrame(b, &hdr, &p.sc)
	p.buf = b
	p.msgs = append(p.msgs[:0], sockopt.Message{Buf: b, Addr: to})
	n.write(p.msgs)
}

// sendSyncLocked sends this node's whole member table (itself included)
// to a validated address, in as many SYNC frames as it takes.
func (p *prober) sendSyncLocked(kind codec.SyncKind, to netip.AddrPort) {
	n := p.n
	p.digest = append(p.digest[:0], codec.DigestEntry{ID: n.id, Epoch: n.epoch, Incarnation: n.inc.Load(), Addr: n.cfg.advertise, State: StateAlive})
	p.digest = n.members.syncEntries(p.digest)
	p.msgs = n.syncParts(kind, len(p.digest), codec.DigestEntryLen, p.putDigest, &p.frames, p.msgs, &p.sc, to)
	n.writeBatched(p.msgs)
}

// putDigest appends the table's entry i (syncParts).
func (p *prober) putDigest(b []byte, i int) []byte { return codec.AppendDigestEntry(b, &p.digest[i]) }

// tableSum summarises the live part of what sendSyncLocked would send
// (this node's entry and every validated member alive or suspect),
// independent of order: a sum of one hash per entry. Dead and departed
// members are left out: nodes forget them at different times, and a
// push of one to a node that forgot it changes nothing there (gossip
// never adds a member that is not alive), while a member dead here and
// alive there still makes the sums differ. O(N), once per periodic
// push-pull sent or received, as the table itself was. It does not
// allocate.
func (p *prober) tableSum() codec.SyncSum {
	n := p.n
	p.digest = append(p.digest[:0], codec.DigestEntry{ID: n.id, Epoch: n.epoch, Incarnation: n.inc.Load(), Addr: n.cfg.advertise, State: StateAlive})
	p.digest = n.members.syncEntries(p.digest)
	var sum uint64
	var live uint32
	var buf [codec.DigestEntryLen]byte
	for i := range p.digest {
		if st := p.digest[i].State; st == StateDead || st == StateLeft {
			continue
		}
		sum += xxhash.Sum64(codec.AppendDigestEntry(buf[:0], &p.digest[i]))
		live++
	}
	return codec.SyncSum{Hash: sum, Members: live}
}

// sendDigestLocked begins a periodic push-pull with a summary of the
// table: a peer whose table sums differently answers with its table
// (SyncPush) and gets ours back; one that agrees answers nothing. So a
// push-pull between nodes that agree, the steady state, costs one small
// frame instead of two tables (at N=1000, 1000 entries of 44 bytes each
// way: about 90 KB, computed).
func (p *prober) sendDigestLocked(to netip.AddrPort) {
	n := p.n
	sum := p.tableSum()
	hdr := n.controlHeader(codec.TypeSync)
	hdr.PayloadLen = uint16(codec.SyncFixedLen + codec.SyncSumLen)
	b := codec.AppendHeader(p.buf[:0], &hdr)
	b = codec.AppendSync(b, &codec.Sync{Kind: codec.SyncDigest, Part: 0, Parts: 1})
	b = codec.AppendSyncSum(b, &sum)
	b = n.sealFrame(b, &hdr, &p.sc)
	p.buf = b
	p.msgs = append(p.msgs[:0], sockopt.Message{Buf: b, Addr: to})
	n.write(p.msgs)
	n.ctr.syncDigests.Add(1)
}

// handleProbe handles a PROBE from a validated member (admit and the
// replay window have passed it): its piggybacked updates first, then the
// probe itself. A ping is answered whatever the mode (a member of a big
// mesh may probe a node that still counts a small one).
func (p *prober) handleProbe(h *codec.Header, payload []byte, now time.Time) {
	n := p.n
	pr, off, err := codec.ParseProbe(payload)
	if err != nil {
		n.ctr.drop(DropMalformed)
		return
	}
	n.members.touch(h.Origin, now, pr.Kind == codec.ProbePing || pr.Kind == codec.ProbePingReq)
	p.mu.Lock()
	defer p.mu.Unlock()
	credit := challengeCredit * codec.FrameLen(h)
	vouch := n.members.vouches(h)
	rest := payload[off:]
	for i := 0; i < int(h.Count); i++ {
		u, m, err := codec.ParseUpdate(rest)
		if err != nil {
			n.ctr.drop(DropMalformed)
			break
		}
		rest = rest[m:]
		p.applyLocked(&u, vouch, &credit, now)
	}
	switch pr.Kind {
	case codec.ProbePing:
		if pr.Target != n.id {
			return // for a node that had our address before us
		}
		if to, ok := n.members.validatedAddr(h.Origin); ok {
			p.sendProbeLocked(to, codec.Probe{Kind: codec.ProbeAck, Seq: pr.Seq, Target: n.id})
		}
	case codec.ProbePingReq:
		var ok bool
		p.acts, ok = n.members.swimPingReq(h.Origin, pr.Seq, pr.Target, now, p.acts[:0])
		if ok {
			p.sendLocked(p.acts, now)
			p.kick() // the relay's deadline may be the earliest
		}
	case codec.ProbeAck:
		p.acts = n.members.swimAck(pr.Seq, p.acts[:0])
		p.sendLocked(p.acts, now)
	case codec.ProbeNack:
		n.members.swimNack(pr.Seq)
	}
}

// applyLocked applies one membership update (piggybacked or from a
// push-pull), challenging what must be validated first; authed says it
// came in an authenticated frame (a newcomer is then vouched for).
func (p *prober) applyLocked(u *codec.Update, authed bool, credit *int, now time.Time) {
	n := p.n
	inc, challenge := n.members.update(u, authed, now)
	if inc != 0 {
		raiseInc(&n.inc, inc)
	}
	if challenge.IsValid() {
		n.val.challenge(challenge, false, credit, now)
	}
}

// handleSync handles one part of a push-pull from a validated member:
// every entry is applied as an update, and part 0 of a push is answered
// with this node's table.
func (p *prober) handleSync(h *codec.Header, payload []byte, now time.Time) {
	n := p.n
	s, off, err := codec.ParseSync(payload)
	if err != nil {
		n.ctr.drop(DropMalformed)
		return
	}
	n.members.touch(h.Origin, now, false)
	p.mu.Lock()
	defer p.mu.Unlock()
	credit := challengeCredit * codec.FrameLen(h)
	vouch := n.members.vouches(h)
	rest := payload[off:]
	for i := 0; i < int(h.Count); i++ {
		d, m, err := codec.ParseDigestEntry(rest)
		if err != nil {
			n.ctr.drop(DropMalformed)
			break
		}
		rest = rest[m:]
		u := codec.Update{ID: d.ID, Epoch: d.Epoch, Incarnation: d.Incarnation, Addr: d.Addr, State: d.State, From: h.Origin}
		p.applyLocked(&u, vouch, &credit, now)
	}
	switch s.Kind {
	case codec.SyncDigest:
		theirs, _, err := codec.ParseSyncSum(payload[off:])
		if err != nil {
			n.ctr.drop(DropMalformed)
			return
		}
		if theirs == p.tableSum() {
			n.ctr.syncAgreed.Add(1)
			return
		}
		if to, ok := n.members.validatedAddr(h.Origin); ok {
			p.sendSyncLocked(codec.SyncPush, to) // and its reply brings theirs
		}
	case codec.SyncPush:
		if s.Part == 0 {
			if to, ok := n.members.validatedAddr(h.Origin); ok {
				p.sendSyncLocked(codec.SyncReply, to)
			}
		}
	case codec.SyncReply:
		if !vouch && h.Flags&codec.FlagAuth != 0 && !p.synced.Load() {
			// An authenticated join answer that vouched for nobody: its
			// sender was still in its own vouched grace here (most
			// members a joiner holds in its first period were vouched
			// for by a seed's greeting within it), so every member it
			// named waits for a challenge, at ChallengeRate (50 a
			// second per node at N=1000 in the scale suite: a newcomer
			// of a restart wave knew 22 of 999 members after 1.6
			// periods, 231 after 4.8). The join push-pull asks again,
			// another member, a period later (joinSyncRetry).
			return
		}
		p.synced.Store(true)
		n.members.swimSynced()
	}
}

// The member table's side of SWIM: the machine is m.swim, non-nil while
// the mesh is above DirectLimit, under m.mu like the rest of the table.

func toSwim(u *codec.Update) swim.Update {
	return swim.Update{ID: u.ID, Epoch: u.Epoch, Incarnation: u.Incarnation, Addr: u.Addr, State: swim.State(u.State), From: u.From}
}

func entrySwim(e *memberEntry) swim.Update {
	return swim.Update{ID: e.ID, Epoch: e.Epoch, Incarnation: e.Incarnation, Addr: e.Addr, State: swim.State(e.State)}
}

// bigLocked reports whether live validated members and pending named
// ones are more than DirectLimit (never for a bare test table, limit 0).
func (m *membership) bigLocked(live, pending int) bool {
	return m.cfg.DirectLimit > 0 && live+pending > m.cfg.DirectLimit
}

// swimModeLocked switches between the heartbeat and SWIM with live, the
// validated live members counted by tick, and pending, the members a
// validated member named that are not validated yet (a stranger's own
// ALIVE counts for nothing: forged ones must not switch the mode, and with
// it the news lease, off): a joiner whose push-pull named a mesh above
// DirectLimit probes from the start instead of judging members that probe
// (and do not heartbeat) it by their silence. So does a node that was
// probed (pinged or asked to probe) by two members in the last swimProbedHold periods:
// only a node running SWIM probes, so its mesh is a big one, however few
// members this node has validated yet; it leaves SWIM no sooner than
// swimProbedHold periods later, when its table is still small. Entering builds the machine
// from the table (O(N), once); leaving drops it and restarts the silence
// clocks of heartbeat detection.
func (m *membership) swimModeLocked(live, pending int, now time.Time) {
	hold := swimProbedHold * m.cfg.Heartbeat
	big := m.bigLocked(live, pending)
	switch {
	case m.swim == nil && (big || m.probedRecentlyLocked(now, hold)):
		m.swimSince = now
		self := swim.Update{ID: m.self, Epoch: m.selfEpoch, Addr: m.cfg.advertise}
		if m.selfInc != nil {
			self.Incarnation = m.selfInc.Load()
		}
		m.swim = swim.New(swimConfig(m.cfg), self, m.self^uint64(now.UnixNano()))
		for _, e := range m.members {
			if !e.validated || (e.State != StateAlive && e.State != StateSuspect) {
				continue
			}
			if e.State == StateSuspect {
				e.State, e.stateSince = StateAlive, now // the probes judge it from here
				m.syncLocked(e)
				m.events.push(Event{Type: EventAlive, Member: e.Member})
			}
			m.swim.Add(entrySwim(e), now)
		}
		if m.synced {
			m.swim.Synced() // the join push-pull is done: steady intervals
		}
		if m.wake != nil {
			select {
			case m.wake <- struct{}{}:
			default:
			}
		}
	case m.swim != nil && !big && now.Sub(m.swimSince) >= hold:
		m.swim = nil
		for _, e := range m.members {
			if e.validated && (e.State == StateAlive || e.State == StateSuspect) {
				e.LastHeard = now // heartbeat detection starts over for the live; the dead stay dead
			}
		}
	}
}

// pendingDue appends up to max addresses of unvalidated members not asked
// for a period, marking them asked. It scans the pending queue at most
// swimAskScans times per Heartbeat and only while members wait, and it
// drops the ids of members validated or gone since from the queue as it
// goes, so the scan costs what waits, not what once waited.
func (m *membership) pendingDue(dst []netip.AddrPort, max int, now time.Time) []netip.AddrPort {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.swim == nil || len(m.members) == m.validatedN || now.Sub(m.askedAt) < m.cfg.Heartbeat/swimAskScans {
		return dst
	}
	m.askedAt = now
	q := m.pendingQ[:0]
	for k, id := range m.pendingQ {
		e := m.members[id]
		if e == nil || e.validated {
			continue
		}
		q = append(q, id)
		if len(dst) >= max {
			q = append(q, m.pendingQ[k+1:]...) // the rest, unexamined
			break
		}
		if now.Sub(e.stateSince) >= m.cfg.Heartbeat {
			e.stateSince = now
			dst = append(dst, e.Addr)
		}
	}
	clear(m.pendingQ[len(q):])
	m.pendingQ = q
	return dst
}

// pendingAddr returns the address of a member heard of but not validated.
func (m *membership) pendingAddr(id uint64) (netip.AddrPort, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e := m.members[id]; e != nil && !e.validated {
		return e.Addr, true
	}
	return netip.AddrPort{}, false
}

// touch records a frame from a validated member: in heartbeat mode a
// member that probes us (it runs SWIM) is heard although it sends no
// heartbeat.
// probed says the frame was a ping or ping-req (see swimModeLocked).
func (m *membership) touch(id uint64, now time.Time, probed bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.members[id]
	if e == nil || !e.validated {
		return
	}
	if e.State == StateAlive {
		e.LastHeard = now
	}
	if probed {
		if id != m.probedBy {
			m.probedPrv, m.probedBy = m.probedAt, id
		}
		m.probedAt = now
	}
}

// probedRecentlyLocked reports whether two different members probed us
// (pinged or asked us to probe) within hold: only nodes running SWIM
// probe, so our mesh is a big one. One member alone, whatever it sends,
// does not switch us (and with us the news lease) to SWIM.
func (m *membership) probedRecentlyLocked(now time.Time, hold time.Duration) bool {
	return !m.probedAt.IsZero() && now.Sub(m.probedAt) < hold && !m.probedPrv.IsZero() && now.Sub(m.probedPrv) < hold
}

// swimming reports whether SWIM runs (more than DirectLimit live members).
func (m *membership) swimming() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.swim == nil && m.bigLocked(m.liveLocked(), m.namedN) {
		// A table that grew past DirectLimit since the last tick (one
		// push-pull names the whole mesh; with a keyring its members are
		// taken at once) switches now: heartbeating every member until the
		// next tick would have a cold start of N nodes send N² heartbeats
		// at once (1.09 M frames in the first second at N=1000). Only
		// growth switches here; the probes' hold and leaving are tick's.
		m.swimModeLocked(m.liveLocked(), m.namedN, time.Now())
	}
	return m.swim != nil
}

// liveAt reports whether a validated live member is at addr.
func (m *membership) liveAt(addr netip.AddrPort) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.members[m.validAt[addr]]
	return e != nil && (e.State == StateAlive || e.State == StateSuspect)
}

// applyChangedLocked applies a state change the machine decided.
func (m *membership) applyChangedLocked(a *swim.Action, now time.Time) {
	e := m.members[a.ID]
	if e == nil || !e.validated {
		return
	}
	st := MemberState(a.State)
	if e.State == StateLeft {
		return // gone for this epoch: only a RESPONSE brings it back
	}
	if e.State == st {
		e.Incarnation = max(e.Incarnation, a.Incarnation)
		return
	}
	e.State, e.Incarnation, e.stateSince = st, a.Incarnation, now
	m.syncLocked(e) // the fan-out view holds alive and suspect members alike
	switch st {
	case StateAlive:
		m.events.push(Event{Type: EventAlive, Member: e.Member})
	case StateSuspect:
		m.events.push(Event{Type: EventSuspect, Member: e.Member})
	case StateDead:
		m.events.push(Event{Type: EventDead, Member: e.Member})
	case StateLeft:
		m.events.push(Event{Type: EventLeave, Member: e.Member})
	}
}

// applyActsLocked applies the Changed actions in acts and returns the rest.
func (m *membership) applyActsLocked(acts []swim.Action, now time.Time) []swim.Action {
	out := acts[:0]
	for i := range acts {
		if acts[i].Kind == swim.Changed {
			m.applyChangedLocked(&acts[i], now)
			continue
		}
		out = append(out, acts[i])
	}
	return out
}

// swimTick runs the machine's timers, appending what must be sent to dst; next is when to call again (zero:
// nothing scheduled).
func (m *membership) swimTick(now time.Time, dst []swim.Action) (_ []swim.Action, next time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.swim == nil {
		return dst, next
	}
	start := len(dst)
	dst = m.swim.Tick(now, dst)
	dst = append(dst[:start], m.applyActsLocked(dst[start:], now)...)
	if sn := m.swim.Next(); next.IsZero() || sn.Before(next) {
		next = sn
	}
	return dst, next
}

// swimPingReq starts an indirect probe of target for requester, if both
// are validated members held by the machine.
func (m *membership) swimPingReq(requester, reqSeq, target uint64, now time.Time, dst []swim.Action) ([]swim.Action, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.members[requester]
	if m.swim == nil || r == nil || !r.validated {
		return dst, false
	}
	return m.swim.HandlePingReq(requester, r.Addr, reqSeq, target, now, dst)
}

func (m *membership) swimAck(seq uint64, dst []swim.Action) []swim.Action {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.swim == nil {
		return dst
	}
	return m.swim.HandleAck(seq, dst)
}

func (m *membership) swimNack(seq uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.swim != nil {
		m.swim.HandleNack(seq)
	}
}

func (m *membership) swimSynced() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.synced = true
	if m.swim != nil {
		m.swim.Synced()
	}
}

// takeUpdates appends up to max queued updates for one probe frame. A
// ping to a suspected member carries its suspicion first, whatever the
// queue holds (Lifeguard's buddy system): the member learns of it from
// the node that probes it and refutes at once.
func (m *membership) takeUpdates(dst []codec.Update, max int, buddy uint64) []codec.Update {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.swim == nil {
		return dst
	}
	m.swimUps = m.swimUps[:0]
	if u, ok := m.swim.Get(buddy); ok && u.State == swim.Suspect && max > 0 {
		m.swimUps = append(m.swimUps, u)
		max--
	}
	m.swimUps = m.swim.Take(m.swimUps, max)
	for _, u := range m.swimUps {
		dst = append(dst, codec.Update{ID: u.ID, Epoch: u.Epoch, Incarnation: u.Incarnation, Addr: u.Addr, State: codec.MemberState(u.State), From: u.From})
	}
	return dst
}

// syncEntries appends every validated member to dst, for a push-pull.
func (m *membership) syncEntries(dst []codec.DigestEntry) []codec.DigestEntry {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range m.members {
		if e.validated {
			dst = append(dst, codec.DigestEntry{ID: e.ID, Epoch: e.Epoch, Incarnation: e.Incarnation, Addr: e.Addr, State: e.State})
		}
	}
	return dst
}

// randomValidated picks a validated live member's address.
func (m *membership) randomValidated(rng *rand.Rand) (netip.AddrPort, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.vAddrs) == 0 {
		return netip.AddrPort{}, false
	}
	return m.vAddrs[rng.IntN(len(m.vAddrs))], true
}

// update applies a membership update from a validated member's PROBE or
// SYNC. It returns an incarnation to raise ours to (a refutation; 0 for
// none) and an address to challenge: a member new, moved or back. In a
// mesh at or below DirectLimit it is read like a digest entry.
func (m *membership) update(u *codec.Update, authed bool, now time.Time) (refute uint64, challenge netip.AddrPort) {
	m.mu.Lock()
	defer m.mu.Unlock()
	selfInc := uint64(0)
	if m.selfInc != nil {
		selfInc = m.selfInc.Load()
	}
	if m.swim == nil {
		d := codec.DigestEntry{ID: u.ID, Epoch: u.Epoch, Incarnation: u.Incarnation, Addr: u.Addr, State: u.State}
		ref, ch := m.gossipLocked(&d, m.selfEpoch, selfInc, authed, now)
		if ref {
			return selfInc + 1, ch
		}
		return 0, ch
	}
	if u.ID == m.self {
		m.swim.SetIncarnation(selfInc)
		_, acts := m.swim.Apply(toSwim(u), now, m.swimActs[:0])
		m.swimActs = acts
		for _, a := range acts {
			if a.Kind == swim.Refuted {
				refute = a.Incarnation
			}
		}
		return refute, netip.AddrPort{}
	}
	if !u.Addr.IsValid() || u.Addr.Port() == 0 {
		return 0, netip.AddrPort{}
	}
	e, ok := m.members[u.ID]
	if !ok || !e.validated {
		if u.State != StateAlive {
			return 0, netip.AddrPort{}
		}
		if authed && m.vouchLocked(u.ID, u.Epoch, u.Incarnation, u.Addr, now) {
			m.swim.Learned() // push-pull keeps catching up while tables teach us members
			return 0, netip.AddrPort{}
		}
		if ok && !newer(u.Epoch, u.Incarnation, e.Epoch, e.Incarnation) {
			// Known, still unanswered. Probes and push-pulls name a
			// member far more often than heartbeats did: ask again only
			// once a period has passed since it was first heard of, or
			// a slow answer would draw a challenge per mention.
			if now.Sub(e.stateSince) < m.cfg.Heartbeat {
				return 0, netip.AddrPort{}
			}
			e.stateSince = now
			return 0, u.Addr
		}
		m.pendingLocked(u.ID, u.Epoch, u.Incarnation, u.Addr, true, now)
		m.swim.Learned() // push-pull keeps catching up while tables teach us members
		return 0, u.Addr
	}
	wasLeft := e.State == StateLeft
	o, acts := m.swim.Apply(toSwim(u), now, m.swimActs[:0])
	m.swimActs = m.applyActsLocked(acts, now)
	switch o {
	case swim.Applied:
		if u.State == StateAlive && newer(u.Epoch, u.Incarnation, e.Epoch, e.Incarnation) {
			e.Incarnation = u.Incarnation
		}
		if u.State == StateLeft && !wasLeft && e.State == StateLeft && m.cfg.Keyring == nil {
			// Gone, by another member's word: most often a node that
			// restarted there with a new id, whose validation retired
			// this one (replaceAddrLocked). In plaintext the newcomer
			// must answer this node's own challenge anyway: ask the
			// address now who answers there, rather than when news of
			// the newcomer comes (by push-pull, past the update queue's
			// cap). After a graceful leave it costs one unanswered
			// challenge. With a keyring the news of the newcomer is
			// vouched for (vouchLocked) and spread (swim.Announce): a
			// challenge from every member would cost the newcomer N
			// RESPONSEs, and their greetings, at once.
			return 0, e.Addr
		}
	case swim.Validate, swim.Unknown:
		if u.State == StateAlive {
			m.swim.Learned()
			return 0, u.Addr
		}
	}
	return 0, netip.AddrPort{}
}

// swimHeardLocked takes a heartbeat from a validated member while SWIM
// runs: news of its incarnation, judged like an update from itself.
func (m *membership) swimHeardLocked(e *memberEntry, inc uint64, now time.Time) {
	u := swim.Update{ID: e.ID, Epoch: e.Epoch, Incarnation: inc, Addr: e.Addr, State: swim.Alive, From: e.ID}
	o, acts := m.swim.Apply(u, now, m.swimActs[:0])
	m.swimActs = m.applyActsLocked(acts, now)
	if o == swim.Applied {
		e.Incarnation = max(e.Incarnation, inc)
	}
}
