package coherence

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

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
	return fmt.Sprintf("reader's %s at %v; writer's %s; invalidations of the key the reader's node applied from %v on: %s; other live nodes that applied it within the bound: %s; reader's Gap events meanwhile: %s; the writer's node wrote the key after the commit: %s",
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
