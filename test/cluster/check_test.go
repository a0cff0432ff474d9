package cluster

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// tally is the checker's verdict on one publisher's invalidations in a
// range of sequences at one receiver. Every published invalidation is
// exactly one of delivered (applied, first copy or repaired), flagged
// (its frame is covered by a Gap event) or silent (neither: a bug).
type tally struct {
	published, delivered, flagged, silent int
	wrong                                 int      // frames applied with other keys or counts than published
	silentSeqs                            []uint64 // the first few silent sequences
}

func (a *tally) add(b tally) {
	a.published += b.published
	a.delivered += b.delivered
	a.flagged += b.flagged
	a.silent += b.silent
	a.wrong += b.wrong
	if len(a.silentSeqs) < 8 {
		a.silentSeqs = append(a.silentSeqs, b.silentSeqs...)
	}
}

func (a tally) String() string {
	s := fmt.Sprintf("published %d delivered %d flagged %d silent %d", a.published, a.delivered, a.flagged, a.silent)
	if a.wrong > 0 {
		s += fmt.Sprintf(" wrong %d", a.wrong)
	}
	if len(a.silentSeqs) > 0 {
		s += fmt.Sprintf(" (silent seqs %v)", a.silentSeqs)
	}
	return s
}

// account checks what recv did with pub's invalidations in frames
// from..to (inclusive).
func account(pub, recv *node, from, to uint64) tally {
	pub.mu.Lock()
	sent := make(map[uint64]frame, len(pub.pubs))
	for s, f := range pub.pubs {
		if s >= from && s <= to {
			sent[s] = *f
		}
	}
	origin, epoch := pub.id, pub.epoch
	pub.mu.Unlock()

	recv.mu.Lock()
	defer recv.mu.Unlock()
	got := recv.invs[origin]
	var gaps []gapEvent
	for _, g := range recv.gaps {
		if g.origin == origin && g.epoch == epoch {
			gaps = append(gaps, g)
		}
	}
	var t tally
	seqs := make([]uint64, 0, len(sent))
	for s := range sent {
		seqs = append(seqs, s)
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	for _, s := range seqs {
		want := sent[s]
		t.published += want.count
		if g := got[s]; g != nil {
			if *g == want {
				t.delivered += want.count
			} else {
				t.wrong++
				t.silent += want.count
			}
			continue
		}
		if covered(gaps, s) {
			t.flagged += want.count
			continue
		}
		t.silent += want.count
		if len(t.silentSeqs) < 8 {
			t.silentSeqs = append(t.silentSeqs, s)
		}
	}
	return t
}

func covered(gaps []gapEvent, seq uint64) bool {
	for _, g := range gaps {
		if seq >= g.first && seq <= g.last {
			return true
		}
	}
	return false
}

// stream is one publisher's frames from..to that a set of receivers owe.
type stream struct {
	pub      *node
	from, to uint64
	recvs    []*node
}

// settle waits until every receiver has accounted for (applied or flagged)
// every invalidation of every stream, or timeout passes, and returns the
// total and per-receiver tallies. It does not fail the test: the caller
// asserts on silent.
func settle(t *testing.T, timeout time.Duration, streams ...stream) (tally, map[string]tally, time.Duration) {
	t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		total, per := tallyAll(streams)
		if total.silent == 0 || time.Now().After(deadline) {
			return total, per, time.Since(start)
		}
		<-tick.C
	}
}

func tallyAll(streams []stream) (tally, map[string]tally) {
	var total tally
	per := map[string]tally{}
	for _, s := range streams {
		for _, r := range s.recvs {
			v := account(s.pub, r, s.from, s.to)
			total.add(v)
			p := per[r.label]
			p.add(v)
			per[r.label] = p
		}
	}
	return total, per
}

// logTallies writes the per-receiver verdicts to the test log.
func logTallies(t *testing.T, per map[string]tally) {
	t.Helper()
	labels := make([]string, 0, len(per))
	for l := range per {
		labels = append(labels, l)
	}
	sort.Strings(labels)
	for _, l := range labels {
		t.Logf("  %-6s %v", l, per[l])
	}
}

// repairStats sums the repair counters of nodes and returns the repaired
// frame count and the worst repair-latency quantiles among them.
func repairStats(t *testing.T, nodes ...*node) (repaired int64, gapEvents int64, p50, p99, worst time.Duration) {
	t.Helper()
	for _, n := range nodes {
		s := n.stats(t)
		repaired += s["retransmits_received"]
		gapEvents += s["gap_events"]
		p50 = max(p50, time.Duration(s["repair_p50_us"])*time.Microsecond)
		p99 = max(p99, time.Duration(s["repair_p99_us"])*time.Microsecond)
		worst = max(worst, time.Duration(s["repair_max_us"])*time.Microsecond)
	}
	return
}

// result is one row of the reliability table.
type result struct {
	scenario  string
	published int // invalidations owed, summed over receivers
	delivered int
	repaired  int64 // frames applied from retransmission
	flagged   int
	silent    int
	detection string
	repair    string
	notes     string
}

var results = struct {
	sync.Mutex
	rows []result
}{}

// record logs r and keeps it for the results table.
func record(t *testing.T, r result) {
	t.Helper()
	t.Logf("RESULT %s: owed %d delivered %d repaired-frames %d flagged %d silent %d | detection %s | repair %s | %s",
		r.scenario, r.published, r.delivered, r.repaired, r.flagged, r.silent, r.detection, r.repair, r.notes)
	results.Lock()
	results.rows = append(results.rows, r)
	results.Unlock()
}

func fromTally(scenario string, v tally) result {
	return result{scenario: scenario, published: v.published, delivered: v.delivered, flagged: v.flagged, silent: v.silent}
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
}

func renderResults() string {
	results.Lock()
	defer results.Unlock()
	var b strings.Builder
	b.WriteString("## Reliability across hosts (test/cluster)\n\n")
	b.WriteString("Real hosts made of Linux network namespaces (veth pairs to a bridge in its own namespace), one node process\n")
	b.WriteString(fmt.Sprintf("per host, heartbeat %v, suspect after %v, dead after %v, repair timeout %v.\n",
		heartbeat, suspectAfter, deadAfter, repairTimeout))
	b.WriteString("Counts are invalidations owed to receivers, summed over receivers (one invalidation owed to 3 receivers counts 3).\n")
	b.WriteString("Delivered = applied (first copy or repaired); repaired = frames applied from a retransmission;\n")
	b.WriteString("flagged = covered by a Gap event; silent = neither (must be 0).\n")
	b.WriteString("Reproduce: `sudo WARPMESH_CLUSTER_RESULTS=$PWD/test/cluster/RESULTS.md go test -race -count=1 -v ./test/cluster/`.\n\n")
	b.WriteString("| scenario | owed | delivered | repaired (frames) | flagged | silent | detection | repair latency | notes |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---|---|---|\n")
	rows := append([]result{}, results.rows...)
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].scenario[0] < rows[j].scenario[0] })
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %d | %s | %s | %s |\n",
			r.scenario, r.published, r.delivered, r.repaired, r.flagged, r.silent, r.detection, r.repair, r.notes)
	}
	return b.String()
}
