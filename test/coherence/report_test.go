package coherence

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warpmesh/warpmesh/codec"
	"github.com/warpmesh/warpmesh/engine"
	"github.com/warpmesh/warpmesh/presets"
)

// What the oracle records to report on a run and to explain a stale read:
// counters summed over incarnations, Gap events, and per node what it sent
// and applied of each key.

// sentKey is one key this node's socket was handed in a DATA frame.
type sentKey struct {
	key     int32
	at      int64
	seq     uint64
	to      netip.AddrPort
	dropped bool
	retrans bool
}

// ctrlSent is one control frame a node wrote: its type, the high-water
// mark it carried (every control frame does, in Seq), to whom, and
// whether the fabric dropped it.
type ctrlSent struct {
	typ     codec.FrameType
	at      int64
	hwm     uint64
	to      netip.AddrPort
	dropped bool
}

// maxCtrlLog caps a node's control-frame log (heartbeats, challenges,
// NACKs, ACKs: a few thousand a second in all).
const maxCtrlLog = 1 << 20

// packedKey is one of a node's own invalidations as its sender packed it
// into DATA sequence seq.
type packedKey struct {
	key int32
	at  int64
	seq uint64
}

// setDone is a writer's Set or Delete of version ver of key returning.
type setDone struct {
	key int32
	ver uint32
	at  int64
}

// eventAt is a membership or readiness event a node raised.
type eventAt struct {
	at     int64
	typ    engine.EventType
	member uint64
}

// received is one invalidation a node applied, for explaining stale reads.
type received struct {
	key int32
	at  int64
}

// keyIndex parses a database key name ("k00042"); -1 if it is not one.
func keyIndex(b []byte) int32 {
	if len(b) != 6 || b[0] != 'k' {
		return -1
	}
	n := int32(0)
	for _, c := range b[1:] {
		if c < '0' || c > '9' {
			return -1
		}
		n = n*10 + int32(c-'0')
	}
	return n
}

// gapCount counts Gap events as a node raised them, and keeps the first
// few with the time they were delivered, for explaining stale reads.
type gapCount struct {
	events, frames atomic.Uint64
	byReason       [8]atomic.Uint64
	mu             sync.Mutex
	log            []gapAt
	now            func() int64
}

type gapAt struct {
	at  int64
	gap engine.Gap
}

func (g *gapCount) onEvent(e engine.Event) {
	if e.Type != engine.EventGap {
		return
	}
	g.events.Add(1)
	g.frames.Add(e.Gap.Missing)
	if int(e.Gap.Reason) < len(g.byReason) {
		g.byReason[e.Gap.Reason].Add(1)
	}
	g.mu.Lock()
	if len(g.log) < 1024 {
		g.log = append(g.log, gapAt{at: g.now(), gap: e.Gap})
	}
	g.mu.Unlock()
}

// totals sums the counters of incarnations.
type totals struct {
	cache                   presets.Stats
	nacks, retransRecv      uint64
	gapsDetected, repaired  uint64
	framesLost, notOwed     uint64
	balanced                uint64 // nodes whose GapsDetected = GapsRepaired + FramesLost + GapsNotOwed
	givenUp                 map[string]uint64
	gapEvents, gapFrames    uint64
	repairP99               time.Duration // worst node's 99th percentile repair latency
	readyMax                time.Duration // longest boot → EventReady of an incarnation
	neverReady              uint64        // incarnations that never became ready
	incarnations, dataFrame uint64
	drops                   map[string]uint64
}

func (s *totals) add(inc *incarnation) {
	cs := inc.cache.Stats()
	s.cache.Hits += cs.Hits
	s.cache.Misses += cs.Misses
	s.cache.Loads += cs.Loads
	s.cache.Coalesced += cs.Coalesced
	s.cache.StaleLoads += cs.StaleLoads
	s.cache.Sets += cs.Sets
	s.cache.Deletes += cs.Deletes
	s.cache.RemoteInvalidations += cs.RemoteInvalidations
	s.cache.Flushes += cs.Flushes
	s.cache.Evictions += cs.Evictions
	addPassThrough(&s.cache, &cs)
	ns := inc.node.Stats()
	s.nacks += ns.NacksSent
	s.retransRecv += ns.RetransmitsReceived
	s.gapsDetected += ns.GapsDetected
	s.repaired += ns.GapsRepaired
	s.framesLost += ns.FramesLost
	s.notOwed += ns.GapsNotOwed
	if ns.GapsDetected == ns.GapsRepaired+ns.FramesLost+ns.GapsNotOwed {
		s.balanced++
	}
	s.repairP99 = max(s.repairP99, ns.RepairLatency.Quantile(0.99))
	if r := inc.readyAt.Load(); r != 0 {
		s.readyMax = max(s.readyMax, time.Duration(r-inc.bootAt))
	} else {
		s.neverReady++
	}
	s.dataFrame += ns.DataFrames
	if s.givenUp == nil {
		s.givenUp = map[string]uint64{}
	}
	if s.drops == nil {
		s.drops = map[string]uint64{}
	}
	for r, n := range ns.Drops {
		if n > 0 && engine.DropReason(r) != engine.DropOwn {
			s.drops[engine.DropReason(r).String()] += n
		}
	}
	for r, n := range ns.GapsGivenUp {
		if n > 0 {
			s.givenUp[engine.GapReason(r).String()] += n
		}
	}
	s.gapEvents += inc.gaps.events.Load()
	s.gapFrames += inc.gaps.frames.Load()
	s.incarnations++
}

func (s *totals) String() string {
	var reasons []string
	for _, r := range []string{"evicted", "unreachable", "origin_dead", "new_epoch", "too_old"} {
		if n := s.givenUp[r]; n > 0 {
			reasons = append(reasons, fmt.Sprintf("%s=%d", r, n))
		}
	}
	var drops []string
	for _, r := range engine.DropReasons() {
		if n := s.drops[r.String()]; n > 0 {
			drops = append(drops, fmt.Sprintf("%s=%d", r, n))
		}
	}
	return fmt.Sprintf("drops: %s; gap events %d (%d frames; given up: %s), cache flushes %d, loads %d (stale loads %d%s), "+
		"hits %d, sets %d, deletes %d, remote invalidations %d; gaps detected %d, repaired %d (p99 %v), frames lost %d, not owed %d, NACKs sent %d, retransmits received %d; incarnations %d (slowest to ready %v, never ready %d; repair counters add up on %d)",
		strings.Join(drops, " "), s.gapEvents, s.gapFrames, strings.Join(reasons, " "), s.cache.Flushes, s.cache.Loads, s.cache.StaleLoads, passThroughString(&s.cache),
		s.cache.Hits, s.cache.Sets, s.cache.Deletes, s.cache.RemoteInvalidations, s.gapsDetected, s.repaired, s.repairP99, s.framesLost, s.notOwed, s.nacks, s.retransRecv, s.incarnations, s.readyMax.Round(time.Millisecond), s.neverReady, s.balanced)
}

// incAt returns instance i's incarnation live at t (the last booted by t).
func (c *cluster) incAt(i int, t int64) *incarnation {
	if i < 0 || i >= len(c.incs) {
		return nil
	}
	var last *incarnation
	for _, inc := range c.incs[i] {
		if inc.bootAt <= t {
			last = inc
		}
	}
	return last
}

// explain describes the nodes behind a stale read: the reader's and the
// writer's incarnations, and what the reader's node received of the key.
// Called by check with c.mu held.
func (c *cluster) explain(r *read, next commit) string {
	rd, wr := c.incAt(int(r.inst), r.start), c.incAt(int(next.by), next.at)
	if rd == nil || wr == nil {
		return "nodes unknown"
	}
	life := func(inc *incarnation) string {
		s := fmt.Sprintf("node %016x up since %v", inc.id.Load(), dur(inc.bootAt))
		if r := inc.readyAt.Load(); r != 0 {
			s += fmt.Sprintf(", ready at %v", dur(r))
		} else {
			s += ", never ready"
		}
		if inc.retiredAt != 0 {
			s += fmt.Sprintf(" (retired at %v)", dur(inc.retiredAt))
		}
		return s
	}
	var got []string
	rd.recvMu.Lock()
	for _, e := range rd.recv {
		if e.key == int32(r.key) && e.at >= next.at-int64(Bound) {
			got = append(got, dur(e.at).String())
		}
	}
	rd.recvMu.Unlock()
	if len(got) == 0 {
		got = []string{"none"}
	}
	// Which other nodes applied this version's invalidation (the first
	// of the key after its commit, within the bound)?
	var others []string
	for i, incs := range c.incs {
		for _, inc := range incs {
			if inc == rd || inc == wr || inc.bootAt > next.at || (inc.retiredAt != 0 && inc.retiredAt < next.at) {
				continue
			}
			inc.recvMu.Lock()
			hit := false
			for _, e := range inc.recv {
				if e.key == int32(r.key) && e.at >= next.at && e.at <= next.at+int64(Bound) {
					hit = true
					break
				}
			}
			inc.recvMu.Unlock()
			others = append(others, fmt.Sprintf("%d:%v", i, hit))
		}
	}
	var sends []string
	wr.recvMu.Lock()
	for _, e := range wr.sent {
		if e.key == int32(r.key) && e.at >= next.at && e.at <= r.end && len(sends) < 12 {
			note := ""
			if e.dropped {
				note = " dropped"
			}
			if e.retrans {
				note += " retransmitted"
			}
			sends = append(sends, fmt.Sprintf("%v seq %d to %v%s", dur(e.at), e.seq, e.to, note))
		}
	}
	wr.recvMu.Unlock()
	if len(sends) == 0 {
		sends = []string{"none"}
	}
	var gaps []string
	rd.gaps.mu.Lock()
	for _, g := range rd.gaps.log {
		if g.at >= next.at-int64(Bound) && g.at <= r.end {
			gaps = append(gaps, fmt.Sprintf("%v origin %016x %s %d frames", dur(g.at), g.gap.Origin, g.gap.Reason, g.gap.Missing))
		}
	}
	rd.gaps.mu.Unlock()
	if len(gaps) == 0 {
		gaps = []string{"none"}
	}
	timeline := c.writerTimeline(r, next, rd, wr)
	return timeline + fmt.Sprintf("; reader's %s at %v; writer's %s; invalidations of the key the reader's node applied from %v on: %s; other live nodes that applied it within the bound: %s; reader's Gap events meanwhile: %s; the writer's node wrote the key after the commit: %s",
		life(rd), rd.conn.LocalAddr(), life(wr), dur(next.at-int64(Bound)), strings.Join(got, " "), strings.Join(others, " "), strings.Join(gaps, ", "), strings.Join(sends, ", "))
}

// sentToReader reports whether the writer's node handed the newer
// version's invalidation to the reader's node's address (first copy or
// retransmission, not dropped by the fabric) between the commit and the
// read. Called by check with c.mu held.
func (c *cluster) sentToReader(r *read, next commit) bool {
	rd, wr := c.incAt(int(r.inst), r.start), c.incAt(int(next.by), next.at)
	if rd == nil || wr == nil {
		return false
	}
	to := rd.conn.LocalAddr()
	wr.recvMu.Lock()
	defer wr.recvMu.Unlock()
	for _, e := range wr.sent {
		if e.key == int32(r.key) && e.to == to && !e.dropped && e.at >= next.at && e.at <= r.start {
			return true
		}
	}
	return false
}

// stallSummary describes the process stalls the probe saw.
func (c *cluster) stallSummary() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var total, longest int64
	for _, s := range c.stalls {
		total += s.end - s.start
		longest = max(longest, s.end-s.start)
	}
	return fmt.Sprintf("%d process stalls over %v (longest %v, %v in all)", len(c.stalls), probeMin, dur(longest), dur(total))
}

// writerTimeline follows a stale read's newer version through the
// writer's node, phase by phase: the writer's Set returning, the sender
// packing the invalidation (its sequence), the first DATA frame at or
// past that sequence written to the reader's address, the control frames
// (and the high-water marks they carried) written to it meanwhile, and
// the membership events either node raised about the other around it.
// Called with c.mu held.
func (c *cluster) writerTimeline(r *read, next commit, rd, wr *incarnation) string {
	var b strings.Builder
	to := rd.conn.LocalAddr()
	wr.recvMu.Lock()
	setAt := "never"
	for _, e := range wr.sets {
		if e.key == int32(r.key) && e.ver == r.ver+1 {
			setAt = dur(e.at).String()
			break
		}
	}
	var seq uint64
	packAt := "never"
	for _, e := range wr.packs {
		if e.key == int32(r.key) && e.at >= next.at {
			seq, packAt = e.seq, fmt.Sprintf("%v as seq %d", dur(e.at), e.seq)
			break
		}
	}
	firstData := "none"
	if seq != 0 {
		for _, e := range wr.sent {
			if e.to == to && e.seq >= seq && e.at >= next.at {
				firstData = fmt.Sprintf("%v seq %d", dur(e.at), e.seq)
				if e.dropped {
					firstData += " dropped"
				}
				break
			}
		}
	}
	var ctrl []string
	covered := "never"
	acks := 0
	for _, e := range wr.ctrl {
		if e.to != to || e.at < next.at-int64(heartbeat) || e.at > r.end+int64(time.Second) {
			continue
		}
		if seq != 0 && e.hwm >= seq && !e.dropped && covered == "never" {
			covered = fmt.Sprintf("%v (%v)", dur(e.at), e.typ)
		}
		if e.typ == codec.TypeAck {
			acks++
			continue
		}
		if len(ctrl) < 24 {
			note := ""
			if e.dropped {
				note = " dropped"
			}
			ctrl = append(ctrl, fmt.Sprintf("%v %v hwm %d%s", dur(e.at), e.typ, e.hwm, note))
		}
	}
	wr.recvMu.Unlock()
	// The other direction: what the reader's node wrote to the writer's
	// (challenges, responses, NACKs, heartbeats) from a second before the
	// commit on.
	var back []string
	from := wr.conn.LocalAddr()
	rd.recvMu.Lock()
	for _, e := range rd.ctrl {
		if e.to != from || e.typ == codec.TypeAck || e.at < next.at-int64(time.Second) || e.at > r.end+int64(time.Second) {
			continue
		}
		if len(back) < 40 {
			note := ""
			if e.dropped {
				note = " dropped"
			}
			back = append(back, fmt.Sprintf("%v %v%s", dur(e.at), e.typ, note))
		}
	}
	rd.recvMu.Unlock()
	events := func(inc *incarnation, about *incarnation) []string {
		var out []string
		id := about.id.Load()
		inc.recvMu.Lock()
		defer inc.recvMu.Unlock()
		for _, e := range inc.events {
			if e.member == id && e.at >= next.at-int64(10*time.Second) && e.at <= r.end+int64(2*time.Second) {
				out = append(out, fmt.Sprintf("%v %v", dur(e.at), e.typ))
			}
		}
		return out
	}
	fmt.Fprintf(&b, "writer's Set returned at %s; packed at %s; first DATA frame at or past it to the reader: %s; first control frame announcing it to the reader: %s; control frames but ACKs to the reader from a heartbeat before the commit to a second after the read: %s (and %d ACKs)",
		setAt, packAt, firstData, covered, strings.Join(ctrl, ", "), acks)
	fmt.Fprintf(&b, "; writer's events about the reader: %s; reader's events about the writer: %s; reader's control frames but ACKs to the writer from a second before the commit: %s",
		strings.Join(events(wr, rd), ", "), strings.Join(events(rd, wr), ", "), strings.Join(back, ", "))
	return b.String()
}

// healReport describes how each cut healed, pair by pair: for every
// ordered pair of nodes (a, b) that were live across the heal, when a
// last took b back (its first Join event about b after the heal), and how
// often a declared b dead again in the ten seconds after it (flapping).
// Pairs that took no one back within that time are listed as never.
func (c *cluster) healReport() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, ct := range c.cuts {
		var worst time.Duration
		var notes []string
		for i := range c.incs {
			a := c.incAt(i, ct.heal)
			if a == nil {
				continue
			}
			for j := range c.incs {
				b := c.incAt(j, ct.heal)
				if b == nil || a == b {
					continue
				}
				bid := b.id.Load()
				a.recvMu.Lock()
				var join int64 = -1
				deaths, wasDead := 0, false
				for _, e := range a.events {
					if e.member != bid || e.at < ct.start {
						continue
					}
					switch {
					case e.typ == engine.EventDead && e.at < ct.heal:
						wasDead = true
					case e.typ == engine.EventJoin && e.at >= ct.heal && join < 0:
						join = e.at
					case e.typ == engine.EventDead && e.at >= ct.heal && e.at < ct.heal+int64(10*time.Second):
						deaths++
					}
				}
				a.recvMu.Unlock()
				if !wasDead && deaths == 0 {
					continue
				}
				lat := "never"
				if join >= 0 {
					lat = dur(join - ct.heal).String()
					worst = max(worst, time.Duration(join-ct.heal))
				}
				notes = append(notes, fmt.Sprintf("%d→%d back after %s, dead again %d×", i, j, lat, deaths))
			}
		}
		out = append(out, fmt.Sprintf("cut %v→%v %v–%v: slowest take-back %v; %s", ct.from, ct.to, dur(ct.start), dur(ct.heal), worst.Round(time.Millisecond), strings.Join(notes, "; ")))
	}
	return out
}
