package coherence

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// record is what the database holds for a key and what the caches store:
// the key's version and whether that version is a deletion.
type record struct {
	Ver     uint32
	Deleted bool
}

// commit is one committed version of a key: when it became visible, and
// which service instance's writer made it (its invalidation left through
// that instance's node).
type commit struct {
	at  int64 // nanoseconds since the database's base, monotonic clock
	by  int16
	del bool
}

// database is the shared source of truth: a version per key and the
// history of every committed version with its commit time. A write takes
// the key's lock, bumps the version and stamps the commit inside the lock,
// so a loader that reads version v under the same lock read it at a time
// when v was the newest. Safe for concurrent use.
type database struct {
	base   time.Time
	keys   []dbKey
	names  []string
	loads  atomic.Uint64
	writes atomic.Uint64
}

type dbKey struct {
	mu   sync.Mutex
	hist []commit // hist[v] is version v; version 0 exists from the start
}

func newDatabase(keys int, base time.Time) *database {
	d := &database{base: base, keys: make([]dbKey, keys), names: make([]string, keys)}
	for i := range d.keys {
		d.keys[i].hist = []commit{{at: 0, by: -1}}
		d.names[i] = fmt.Sprintf("k%05d", i)
	}
	return d
}

// now is the oracle's clock: monotonic nanoseconds since base.
func (d *database) now() int64 { return int64(time.Since(d.base)) }

// read returns key k's newest version, as a loader sees it.
func (d *database) read(k int) record {
	dk := &d.keys[k]
	dk.mu.Lock()
	v := len(dk.hist) - 1
	r := record{Ver: uint32(v), Deleted: dk.hist[v].del}
	dk.mu.Unlock()
	d.loads.Add(1)
	return r
}

// write commits a new version of key k (a deletion when del is set) on
// behalf of instance by and returns it.
func (d *database) write(k, by int, del bool) record {
	dk := &d.keys[k]
	dk.mu.Lock()
	dk.hist = append(dk.hist, commit{at: d.now(), by: int16(by), del: del})
	v := len(dk.hist) - 1
	dk.mu.Unlock()
	d.writes.Add(1)
	return record{Ver: uint32(v), Deleted: del}
}

// read is one observation by a reader: key, the version GetOrLoad
// returned, the instance it ran on, and when the call started and ended.
type read struct {
	start, end int64
	key        uint32
	ver        uint32
	inst       int16
}

// cut is a network fault in effect from start to heal: traffic from every
// instance in from to every instance in to was dropped.
type cut struct {
	from, to    []int
	start, heal int64
}

func (c *cut) blocks(writer, reader int) bool {
	return slices.Contains(c.from, writer) && slices.Contains(c.to, reader)
}

// verdict is the outcome of checking a run's reads against the history.
type verdict struct {
	Checked  uint64 // reads checked
	Stale    uint64 // reads that returned a version superseded more than Bound before they started
	Invalid  uint64 // reads that returned a version never committed, or committed after the read ended
	Excused  uint64 // reads stale only because a cut kept the newer version's invalidation from the reader
	Starved  uint64 // reads past the bound by no more than the process was stalled (had no core) meanwhile
	Behind   uint64 // reads that returned a version already superseded when they started (within Bound: allowed)
	MaxLag   time.Duration
	Examples []string // the first few stale or invalid reads, described
	// StallExamples are the first few reads excused by a stall.
	StallExamples []string
	// Close counts reads within the bound by less than the slack: the
	// engine's own promise (Bound - slack) was missed and only the slack
	// for scheduling kept them in; CloseExamples are the worst few.
	Close         uint64
	CloseExamples []string
}

// closeCall is a read within the bound by less than the slack.
type closeCall struct {
	r    *read
	next commit
	lag  int64
}

const maxExamples = 5

// check judges every read against the history. A read of key k that
// returned version v is stale when version v+1 was committed more than
// bound before the read started. Versions are committed in order, so v+1
// is the earliest newer version and no other needs looking at; and a commit
// made after a read was recorded lies after its start, so the verdict of a
// read never changes once it is recorded.
//
// A cut suspends the bound for the pairs it separates: a newer version
// written on a cut-off instance (or shortly before the cut, within bound,
// when its invalidation may still have been under repair) counts as
// committed at the heal for readers on the other side. Such reads are
// counted in Excused, and reads started more than bound after the heal are
// held to the bound again.
//
// Stalls stretch the bound the same way, for invalidations the engine did
// send or could not have: a read past the bound by no more than the time
// the test process was measured stalled (see stall) between the newer
// version's (effective) commit and the read is counted in Starved, not
// Stale, when sent reports that the writer's node handed the invalidation
// to the reader's node's address before the read, or when the process ran
// for no more than runMax of that time (too little to expect anything of
// it). The bound is what the engine promises a process that gets a core;
// a machine that withholds one for a second delays every goroutine by a
// second. An invalidation the engine had the time to send and did not is
// the engine's to flag, stalls or not.
//
// explain, when set, adds what the cluster knows about a stale read to its
// example: which nodes were involved and what the reader's node received.
func check(d *database, reads [][]read, cuts []cut, stalls []stall, sent func(r *read, next commit) bool, runMax time.Duration,
	explain func(r *read, next commit) string, bound time.Duration) verdict {
	var v verdict
	b := int64(bound)
	var worst []closeCall // the closest calls, longest lag first
	for _, rs := range reads {
		for i := range rs {
			r := &rs[i]
			v.Checked++
			hist := d.keys[r.key].hist
			if int(r.ver) >= len(hist) || hist[r.ver].at > r.end {
				v.Invalid++
				v.example(fmt.Sprintf("invalid: %s read version %d on instance %d during [%v, %v]; the key has %d versions, version's commit at %v",
					d.names[r.key], r.ver, r.inst, dur(r.start), dur(r.end), len(hist)-1, commitTime(hist, r.ver)))
				continue
			}
			if int(r.ver)+1 >= len(hist) {
				continue // the newest version
			}
			next := hist[r.ver+1]
			if next.at >= r.start {
				continue
			}
			lag := r.start - next.at
			v.Behind++
			eff := next.at
			for j := range cuts {
				c := &cuts[j]
				if c.blocks(int(next.by), int(r.inst)) && next.at > c.start-b && next.at < c.heal {
					eff = max(eff, c.heal)
				}
			}
			if over, stalled := r.start-eff-b, stalledWithin(stalls, eff, r.start); over > 0 && stalled >= over &&
				(sent == nil || r.start-eff-stalled <= int64(runMax) || sent(r, next)) {
				v.Starved++
				if len(v.StallExamples) < 3 {
					e := fmt.Sprintf("excused by a stall: %s read version %d on instance %d at %v; version %d committed at %v by instance %d (%v over the bound, %v stalled since)",
						d.names[r.key], r.ver, r.inst, dur(r.start), r.ver+1, dur(next.at), next.by, dur(over), dur(stalledWithin(stalls, eff, r.start)))
					if explain != nil {
						e += "; " + explain(r, next)
					}
					v.StallExamples = append(v.StallExamples, e)
				}
				continue
			}
			if r.start-eff > b {
				v.Stale++
				v.MaxLag = max(v.MaxLag, time.Duration(lag))
				if len(v.Examples) < maxExamples {
					e := fmt.Sprintf("stale: %s read version %d on instance %d during [%v, %v]; version %d was committed at %v by instance %d (%v before the read; newest at start: %d)",
						d.names[r.key], r.ver, r.inst, dur(r.start), dur(r.end), r.ver+1, dur(next.at), next.by,
						time.Duration(lag).Round(time.Microsecond), newestAt(hist, r.start))
					if eff != next.at {
						e += fmt.Sprintf("; held to the bound from the heal of a cut at %v", dur(eff))
					}
					e += fmt.Sprintf("; the process was stalled %v meanwhile", dur(stalledWithin(stalls, eff, r.start)))
					for j := range cuts {
						if c := &cuts[j]; c.heal > next.at-2*b && c.start < r.start {
							e += fmt.Sprintf("; a cut %v→%v from %v to %v", c.from, c.to, dur(c.start), dur(c.heal))
						}
					}
					if explain != nil {
						e += "; " + explain(r, next)
					}
					v.example(e)
				}
				continue
			}
			if eff != next.at {
				v.Excused++
				continue
			}
			v.MaxLag = max(v.MaxLag, time.Duration(lag))
			if lag > b-int64(runMax) {
				v.Close++
				if len(worst) < 3 || lag > worst[len(worst)-1].lag {
					i, _ := slices.BinarySearchFunc(worst, lag, func(c closeCall, l int64) int { return int(l - c.lag) })
					worst = slices.Insert(worst, i, closeCall{r: r, next: next, lag: lag})
					worst = worst[:min(len(worst), 3)]
				}
			}
		}
	}
	for _, w := range worst {
		e := fmt.Sprintf("close call: %s read version %d on instance %d at %v; version %d committed at %v by instance %d (%v before the read)",
			d.names[w.r.key], w.r.ver, w.r.inst, dur(w.r.start), w.r.ver+1, dur(w.next.at), w.next.by, dur(w.lag))
		for j := range cuts {
			if c := &cuts[j]; c.heal > w.next.at-2*b && c.start < w.r.start {
				e += fmt.Sprintf("; a cut %v→%v from %v to %v", c.from, c.to, dur(c.start), dur(c.heal))
			}
		}
		if explain != nil {
			e += "; " + explain(w.r, w.next)
		}
		v.CloseExamples = append(v.CloseExamples, e)
	}
	return v
}

func (v *verdict) example(s string) {
	if len(v.Examples) < maxExamples {
		v.Examples = append(v.Examples, s)
	}
}

func (v verdict) String() string {
	return fmt.Sprintf("reads checked %d, stale %d, invalid %d, behind within bound %d (max lag %v; %d within the slack of it), excused by a cut %d, by a stall %d",
		v.Checked, v.Stale, v.Invalid, v.Behind, v.MaxLag.Round(time.Microsecond), v.Close, v.Excused, v.Starved)
}

// stall is a stretch of the oracle's clock during which the test process
// had no core for its goroutines: the probe goroutine, asking to wake
// every probeEvery, woke that much later.
type stall struct{ start, end int64 }

const (
	probeEvery = 2 * time.Millisecond
	// probeMin is the shortest oversleep recorded as a stall: shorter
	// ones are ordinary scheduling, which the bound's slack covers; only
	// starvation that long stretches the bound.
	probeMin = 25 * time.Millisecond
)

// probeStalls records stalls until stop is closed and returns them in
// order, through add.
func probeStalls(now func() int64, stop <-chan struct{}, add func(stall)) {
	t := time.NewTimer(probeEvery)
	defer t.Stop()
	for {
		t0 := now()
		select {
		case <-stop:
			return
		case <-t.C:
		}
		if late := now() - t0 - int64(probeEvery); late > int64(probeMin) {
			add(stall{start: t0 + int64(probeEvery), end: now()})
		}
		t.Reset(probeEvery)
	}
}

// stalledWithin returns how long the stalls (in order, not overlapping)
// cover of [from, to].
func stalledWithin(stalls []stall, from, to int64) int64 {
	i, _ := slices.BinarySearchFunc(stalls, from, func(s stall, t int64) int {
		if s.end <= t {
			return -1
		}
		return 1
	})
	var total int64
	for ; i < len(stalls) && stalls[i].start < to; i++ {
		total += min(stalls[i].end, to) - max(stalls[i].start, from)
	}
	return total
}

func commitTime(hist []commit, v uint32) string {
	if int(v) >= len(hist) {
		return "never"
	}
	return dur(hist[v].at).String()
}

// newestAt returns the newest version committed at or before t.
func newestAt(hist []commit, t int64) int {
	i, _ := slices.BinarySearchFunc(hist, t, func(c commit, t int64) int {
		switch {
		case c.at <= t:
			return -1
		default:
			return 1
		}
	})
	return i - 1
}

func dur(ns int64) time.Duration { return time.Duration(ns).Round(time.Microsecond) }
