package engine

import (
	"net/netip"
	"sync"
	"time"

	"github.com/warpmesh/warpmesh/codec"
	"github.com/warpmesh/warpmesh/sockopt"
)

// heartbeater runs membership rounds: every Heartbeat it sends an ALIVE
// (our address, incarnation, data high-water mark and a digest of known
// members) to the group and to every known member and seed, and it runs
// failure detection more often than that. The worker also uses it to answer
// a newcomer at once. Control traffic is rare; its buffers are reused under
// a mutex. Above DirectLimit the probes (probe.go, its pr) detect failure
// and the round's ALIVE goes only to seeds not known live, to rejoin a
// mesh after a partition.
type heartbeater struct {
	pr      prober
	n       *Node
	mu      sync.Mutex
	buf     []byte
	targets []netip.AddrPort
	dead    []netip.AddrPort // probed with challenges (see membership.deadTargets)
	msgs    []sockopt.Message
	seeds   []netip.AddrPort // resolved seeds, refreshed each round
	lastRep map[netip.AddrPort]time.Time
	sc      sealScratch
}

func (h *heartbeater) init(n *Node) {
	h.n = n
	h.buf = make([]byte, 0, n.cfg.MaxFrameSize)
	h.lastRep = make(map[netip.AddrPort]time.Time)
	h.pr.init(n)
}

func (h *heartbeater) run() {
	defer h.n.wg.Done()
	h.n.wg.Add(1) // the probe loop; Close waits for both
	h.n.tickWG.Add(1)
	go func() { defer h.n.tickWG.Done(); h.pr.run() }()
	cfg := h.n.cfg
	t := time.NewTicker(tickInterval(cfg))
	defer t.Stop()
	var last time.Time
	for {
		now := time.Now()
		if h.resolveSeeds(now.Sub(last) >= cfg.Heartbeat) {
			h.broadcast()
			last = now
		}
		h.n.members.tick(now)
		select {
		case <-h.n.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// tickInterval is the period of the heartbeat loop's membership tick:
// half the smaller of Heartbeat and SuspectAfter/3, at least 2 ms.
func tickInterval(cfg *config) time.Duration {
	return max(min(cfg.Heartbeat, cfg.SuspectAfter/3)/2, 2*time.Millisecond)
}

// resolveSeeds takes this round's seeds from the seed resolver (resolve.go;
// DNS never runs on this loop). It reports whether a round is due: every
// Heartbeat, and at once when the resolver's answer gains an address (the
// first answer after start, new pods), so a newcomer is greeted without
// waiting a period.
func (h *heartbeater) resolveSeeds(due bool) bool {
	if !h.n.seedRes.news() && !due {
		return false
	}
	h.mu.Lock()
	h.seeds = h.n.seedRes.next(h.seeds[:0])
	h.mu.Unlock()
	return true
}

// everyoneLocked sets targets to the group (when multicast is on) and
// every live member, and returns where the members start.
func (h *heartbeater) everyoneLocked() (membersStart int) {
	h.targets = h.targets[:0]
	if h.n.group.IsValid() {
		h.targets = append(h.targets, h.n.group)
	}
	start := len(h.targets)
	h.n.members.mu.Lock()
	h.targets = h.n.members.unicastTargets(h.targets)
	h.n.members.mu.Unlock()
	return start
}

// broadcast sends one heartbeat round.
func (h *heartbeater) broadcast() {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := h.n
	if n.members.swimming() {
		h.targets = h.targets[:0]
		for _, s := range h.seeds {
			if s != n.cfg.advertise && !n.members.liveAt(s) {
				h.targets = append(h.targets, s)
			}
		}
		h.sendAliveLocked(h.targets)
	} else {
		start := h.everyoneLocked()
		known := h.targets[start:]
		for _, s := range h.seeds {
			if s == n.cfg.advertise || containsAddr(known, s) {
				continue
			}
			h.targets = append(h.targets, s)
		}
		h.sendAliveLocked(h.targets)
	}
	// Members declared dead get a challenge instead of a heartbeat, every
	// round at first and while we publish, else every few rounds
	// (membership.deadTargets).
	n.members.mu.Lock()
	h.dead = n.members.deadTargets(h.dead[:0], n.hwm.Load())
	n.members.mu.Unlock()
	now := time.Now()
	for _, a := range h.dead {
		n.val.probe(a, now)
	}
}

// reply answers a newcomer (or refutes a suspicion) with an immediate
// heartbeat, at most once per Heartbeat/4 per address.
func (h *heartbeater) reply(to netip.AddrPort) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := time.Now()
	if t, ok := h.lastRep[to]; ok && now.Sub(t) < h.n.cfg.Heartbeat/4 {
		return
	}
	if len(h.lastRep) > 4096 {
		clear(h.lastRep)
	}
	h.lastRep[to] = now
	h.targets = append(h.targets[:0], to)
	if h.n.group.IsValid() {
		h.targets = append(h.targets, h.n.group)
	}
	h.sendAliveLocked(h.targets)
}

func containsAddr(list []netip.AddrPort, a netip.AddrPort) bool {
	for _, x := range list {
		if x == a {
			return true
		}
	}
	return false
}

func (h *heartbeater) sendAliveLocked(targets []netip.AddrPort) {
	if len(targets) == 0 {
		return
	}
	n := h.n
	room := (n.cfg.MaxFrameSize - codec.HeaderLen - codec.AliveFixedLen - codec.TagLen) / codec.DigestEntryLen
	if n.members.swimming() {
		// Above DirectLimit an ALIVE only says "here I am": members learn
		// the table by push-pull (probe.go), and a digest in every reply
		// would have each newcomer challenge thirty addresses per reply.
		room = 0
	}
	n.members.mu.Lock()
	entries := n.members.digestEntries(room)
	hdr := n.controlHeader(codec.TypeAlive)
	hdr.Count = uint16(len(entries))
	hdr.PayloadLen = uint16(codec.AlivePayloadLen(len(entries)))
	b := codec.AppendHeader(h.buf[:0], &hdr)
	b = codec.AppendAlive(b, &codec.Alive{Incarnation: n.inc.Load(), HWM: n.hwm.Load(), Addr: n.cfg.advertise})
	for i := range entries {
		b = codec.AppendDigestEntry(b, &entries[i])
	}
	n.members.mu.Unlock()
	b = n.sealFrame(b, &hdr, &h.sc)
	h.buf = b
	h.sendLocked(b, targets)
	n.ctr.heartbeatsSent.Add(1)
}

func (h *heartbeater) sendLocked(frame []byte, targets []netip.AddrPort) {
	h.msgs = h.msgs[:0]
	for _, t := range targets {
		h.msgs = append(h.msgs, sockopt.Message{Buf: frame, Addr: t})
	}
	// Walk a copy of the slice header: consuming h.msgs itself would
	// leave it with no capacity, and the next round would allocate (one
	// object per heartbeat round, ~40 a second per idle pair of nodes).
	for msgs := h.msgs; len(msgs) > 0; {
		k := min(len(msgs), h.n.cfg.BatchSize)
		h.n.write(msgs[:k])
		msgs = msgs[k:]
	}
}

// sendLeave tells every member (and the group) that we are going.
func (h *heartbeater) sendLeave() {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := h.n
	h.everyoneLocked()
	if len(h.targets) == 0 {
		return
	}
	hdr := n.controlHeader(codec.TypeLeave)
	hdr.PayloadLen = codec.LeaveLen
	b := codec.AppendHeader(h.buf[:0], &hdr)
	b = codec.AppendLeave(b, n.inc.Load())
	b = n.sealFrame(b, &hdr, &h.sc)
	h.buf = b
	h.sendLocked(b, h.targets)
}
