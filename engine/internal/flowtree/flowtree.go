// Package flowtree is a relay's share of per-hop flow control in the
// engine's relay trees (meshes above DirectLimit): what its tree children
// last reported of their subtrees' progress on each origin's stream, and
// what it reports up to its own parent — its own progress, lowered to the
// slowest child's report. Each node thus reports for its whole subtree,
// and the origin, which hears only from its own tree children, keeps its
// window to the slowest node of the tree without an acknowledgement from
// every node (no implosion on the origin).
//
// A child whose report has been behind ours, without advancing, for Stale
// holds no one back until it reports progress again: a dead or silent
// subtree costs the origin one bounded wait (the engine's flowMaxWait),
// not one per flush, as the origin's own waiver does in the direct mesh.
// A child that has never reported (just joined, or an older node) holds
// no one back either.
//
// It owns no goroutine, clock, socket or lock: callers pass the time in.
// Every table has a cap (Params); reports past a cap, or about an earlier
// epoch, are refused and counted. It allocates once per origin tracked
// and never in steady state. The engine's receive worker drives it
// (engine/flow.go), after checking that a report comes from one of its
// tree children for that origin.
package flowtree

import (
	"slices"
	"time"
)

// Params are the tunables; every field must be positive.
type Params struct {
	MaxOrigins  int           // origins tracked; reports about more are refused
	MaxChildren int           // children tracked per origin; more are refused
	Stale       time.Duration // a report behind ours that has not advanced this long holds no one back
}

// report is one child's latest report.
type report struct {
	id  uint64 // the child's member id
	cum uint64 // every sequence up to cum applied in its subtree
	// behind is when Progress first found cum below our own progress
	// since cum last advanced (zero: not since). It is not when the
	// report came: a child idle and caught up for long, whose report is
	// old, holds us again as soon as we get ahead of it.
	behind time.Time
}

type origin struct {
	epoch    uint64
	children []report // cap MaxChildren, allocated once
}

// Table is one relay's view of its children's progress, per origin. The
// zero value is not usable: call New.
type Table struct {
	p       Params
	origins map[uint64]*origin
	refused uint64
}

// New returns an empty Table with p.
func New(p Params) *Table {
	return &Table{p: p, origins: make(map[uint64]*origin)}
}

// Report records that child's subtree applied every frame of origin's
// epoch up to cum, at now. A later epoch than tracked forgets the earlier
// one's reports; an earlier one is refused. It reports false when the
// report was refused (an earlier epoch, or a table at its cap).
func (t *Table) Report(originID, epoch, child, cum uint64, now time.Time) bool {
	o := t.origins[originID]
	if o == nil {
		if len(t.origins) >= t.p.MaxOrigins {
			t.refused++
			return false
		}
		o = &origin{epoch: epoch, children: make([]report, 0, t.p.MaxChildren)} // once per origin
		t.origins[originID] = o
	}
	switch {
	case epoch < o.epoch:
		t.refused++
		return false
	case epoch > o.epoch:
		o.epoch = epoch
		o.children = o.children[:0]
	}
	for i := range o.children {
		c := &o.children[i]
		if c.id == child {
			if cum > c.cum {
				c.cum, c.behind = cum, time.Time{}
			}
			return true
		}
	}
	if len(o.children) >= t.p.MaxChildren {
		t.refused++
		return false
	}
	o.children = append(o.children, report{id: child, cum: cum})
	return true
}

// Progress returns what this node reports up for origin's epoch at now:
// own (its own progress), lowered to the lowest report of a child that is
// not stale. A report is stale once it has been below own, without
// advancing, for Stale (Progress notes when it first finds a report
// behind). The driver calls it whenever its own progress advanced.
func (t *Table) Progress(originID, epoch, own uint64, now time.Time) uint64 {
	o := t.origins[originID]
	if o == nil || o.epoch != epoch {
		return own
	}
	low := own
	for i := range o.children {
		if c := &o.children[i]; t.holds(c, own, now) && c.cum < low { // holds first: it notes when c fell behind
			low = c.cum
		}
	}
	return low
}

// holds reports whether c, behind own, is not stale at now.
func (t *Table) holds(c *report, own uint64, now time.Time) bool {
	if c.cum >= own {
		return false
	}
	if c.behind.IsZero() {
		c.behind = now
	}
	return now.Sub(c.behind) < t.p.Stale
}

// Holding returns how many children hold origin's epoch below own at now
// (reports behind it and not stale): for tests and diagnostics.
func (t *Table) Holding(originID, epoch, own uint64, now time.Time) int {
	o := t.origins[originID]
	if o == nil || o.epoch != epoch {
		return 0
	}
	k := 0
	for i := range o.children {
		if t.holds(&o.children[i], own, now) {
			k++
		}
	}
	return k
}

// Reset forgets every child's report — the view changed, and with it
// every node's tree — and every origin not in live (the view's member
// ids, sorted).
func (t *Table) Reset(live []uint64) {
	for id, o := range t.origins {
		if _, ok := slices.BinarySearch(live, id); !ok {
			delete(t.origins, id)
			continue
		}
		o.children = o.children[:0]
	}
}

// Refused counts reports refused: an earlier epoch, or a table at its cap.
func (t *Table) Refused() uint64 { return t.refused }

// Len is the number of origins tracked.
func (t *Table) Len() int { return len(t.origins) }
