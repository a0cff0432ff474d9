package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/warpmesh/warpmesh/engine"
)

// progress redraws a status line while a phase runs: in place on a
// terminal, as plain lines (less often) otherwise.
type progress struct {
	stopc chan struct{}
	done  chan struct{}
}

func (d *demo) startProgress(phase byte) *progress {
	p := &progress{stopc: make(chan struct{}), done: make(chan struct{})}
	every := time.Second
	if d.tty {
		every = 100 * time.Millisecond
	}
	start := time.Now()
	go func() {
		defer close(p.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				d.progressLine(phase, time.Since(start), false)
			case <-p.stopc:
				d.progressLine(phase, time.Since(start), true)
				return
			}
		}
	}()
	return p
}

func (p *progress) stop() {
	close(p.stopc)
	<-p.done
}

// progressLine prints elapsed time, publish rate, per-node delivery and
// latency percentiles so far.
func (d *demo) progressLine(phase byte, elapsed time.Duration, final bool) {
	pub := d.publishedTotal(phase)
	var b strings.Builder
	fmt.Fprintf(&b, "%5.1fs  published %s (%s/s)  delivered", elapsed.Seconds(), count(pub), count(uint64(float64(pub)/elapsed.Seconds())))
	c := newCounts()
	for _, n := range d.mesh.live() {
		got, want := n.rx.distinct(phase), d.expected(phase, n.idx)
		pct := 100.0
		if want > 0 {
			pct = min(100, 100*float64(got)/float64(want))
		}
		fmt.Fprintf(&b, " %s %s", n.name, percent(pct))
		n.rx.latency[phaseIndex(phase)].addTo(c)
	}
	q := quantiles(c, 0.5, 0.99)
	fmt.Fprintf(&b, "  latency p50 %v p99 %v", short(q[0]), short(q[1]))
	switch {
	case d.tty && final:
		d.printf("\r\033[K  %s\n", b.String())
	case d.tty:
		d.printf("\r\033[K  %s", b.String())
	default:
		d.printf("  %s\n", b.String())
	}
}

func percent(p float64) string {
	if p >= 100 {
		return "100%"
	}
	return fmt.Sprintf("%.1f%%", p)
}

// count renders n with a k/M suffix.
func count(n uint64) string {
	switch {
	case n >= 10_000_000:
		return fmt.Sprintf("%.1fM", float64(n)/1e6)
	case n >= 1_000_000:
		return fmt.Sprintf("%.2fM", float64(n)/1e6)
	case n >= 10_000:
		return fmt.Sprintf("%.0fk", float64(n)/1e3)
	}
	return fmt.Sprint(n)
}

// short rounds d to three significant digits.
func short(d time.Duration) time.Duration {
	switch {
	case d >= 100*time.Millisecond:
		return d.Round(time.Millisecond)
	case d >= 10*time.Millisecond:
		return d.Round(100 * time.Microsecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	case d >= 100*time.Microsecond:
		return d.Round(time.Microsecond)
	}
	return d.Round(100 * time.Nanosecond)
}

// row is one node slot's line in the summary: both incarnations of the
// killed node add up in its row.
type row struct {
	name, id, addr    string
	got, want, dups   uint64
	repaired, flagged string
	p50, p99          time.Duration
	missingFrom       []string
}

// verify checks one incarnation's receipts for phase against what every
// other node published, adding to r.
func (d *demo) verify(r *row, n *demoNode, phase byte) {
	for p := range d.published[phaseIndex(phase)] {
		if p == n.idx {
			continue
		}
		want := d.published[phaseIndex(phase)][p].Load()
		got := n.rx.from(phase, p)
		r.got += got
		r.want += want
		if got < want {
			r.missingFrom = append(r.missingFrom, fmt.Sprintf("%d of n%d's %c keys", want-got, p+1, phase))
		}
	}
}

// summary prints the table and decides the exit status.
func (d *demo) summary() error {
	cfg := d.cfg
	d.printf("== summary\n")
	tw := tabwriter.NewWriter(d.out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "node\tid\taddr\tdelivered\texpected\tdup\trepaired\tflagged\tburst p50\tburst p99\t\n")
	total, probe := newCounts(), newCounts()
	var maxLat time.Duration
	ok := true
	var missing []row
	for _, n := range d.mesh.nodes {
		incs := []*demoNode{n}
		if n.idx == d.failure.victim && d.failure.dead0 != nil {
			incs = []*demoNode{d.failure.dead0, n}
		}
		r := row{name: n.name, id: fmt.Sprintf("%016x", n.node.ID()), addr: n.node.Addr().String()}
		c := newCounts()
		var repaired uint64
		hasRepaired := true
		var flagged uint64
		for i, inc := range incs {
			phases := []byte{phaseProbe, phaseBurst, phaseRejoin}
			if len(incs) == 2 {
				phases = [][]byte{{phaseProbe, phaseBurst}, {phaseRejoin}}[i] // the killed one had the burst, the new one the rest
			}
			for _, ph := range phases {
				d.verify(&r, inc, ph)
			}
			r.dups += inc.rx.dups()
			maxLat = max(maxLat, inc.rx.latency[phaseIndex(phaseBurst)].addTo(c))
			inc.rx.latency[phaseIndex(phaseProbe)].addTo(probe)
			rp, has := repairedOf(inc.node.Stats())
			repaired += rp
			hasRepaired = hasRepaired && has
			_, missing := inc.gaps.get()
			flagged += missing
		}
		for i := range c {
			total[i] += c[i]
		}
		q := quantiles(c, 0.5, 0.99)
		r.p50, r.p99 = q[0], q[1]
		r.repaired = "-"
		if hasRepaired {
			r.repaired = fmt.Sprint(repaired)
		}
		r.flagged = fmt.Sprint(flagged)
		if len(r.missingFrom) > 0 || r.dups > 0 {
			ok = false
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\t%v\t%v\t\n",
			r.name, r.id, r.addr, r.got, r.want, r.dups, r.repaired, r.flagged, short(r.p50), short(r.p99))
		missing = append(missing, r)
	}
	tw.Flush()
	for _, r := range missing {
		for _, m := range r.missingFrom {
			d.printf("  %s is missing %s\n", r.name, m)
		}
	}
	if !ok {
		d.diagnose()
	}

	pub := d.publishedTotal(phaseBurst)
	q := quantiles(total, 0.5, 0.99, 0.999)
	d.printf("\n  burst        %d invalidations published in %v = %s/s; every copy delivered after %v\n",
		pub, d.burst.elapsed.Round(time.Millisecond), count(uint64(float64(pub)/d.burst.elapsed.Seconds())), d.burst.drained.Round(time.Millisecond))
	d.printf("               %d deliveries (%d receivers each) = %s deliveries/s\n",
		pub*uint64(cfg.nodes-1), cfg.nodes-1, count(uint64(float64(pub*uint64(cfg.nodes-1))/d.burst.drained.Seconds())))
	d.printf("  latency      under the burst: p50 %v  p99 %v  p99.9 %v  max %v (Publish call to handler, all nodes)\n",
		short(q[0]), short(q[1]), short(q[2]), short(maxLat))
	pq := quantiles(probe, 0.5, 0.99)
	d.printf("               at rest: p50 %v  p99 %v\n", short(pq[0]), short(pq[1]))
	f := d.failure
	d.printf("  detection    suspect after %v, dead after %v (heartbeat %v); rejoin seen after %v\n",
		f.suspect[1], f.dead[1], cfg.heartbeat, f.rejoin)
	d.printf("  discovery    %v for %d nodes\n", d.discovery.Round(time.Millisecond), cfg.nodes)
	if !ok {
		d.printf("\nFAIL: %v\n", errDemoFailed)
		return errDemoFailed
	}
	d.printf("\nOK: every live node received every invalidation published while it was up, exactly once.\n")
	return nil
}

// diagnose prints every node's loss-related counters, to tell where
// missing invalidations went.
func (d *demo) diagnose() {
	nodes := d.mesh.live()
	if d.failure.dead0 != nil {
		nodes = append(nodes, d.failure.dead0)
	}
	for _, n := range nodes {
		s := n.node.Stats()
		var drops []string
		for _, r := range engine.DropReasons() {
			if s.Drops[r] > 0 {
				drops = append(drops, fmt.Sprintf("%s=%d", r, s.Drops[r]))
			}
		}
		d.printf("  %s epoch %d: frames sent %d received %d, data frames %d, duplicate frames %d, send errors %d, drops [%s], "+
			"gaps %d repaired %d, frames lost %d, nacks sent %d, retransmitted %d, recv buffer %d\n",
			n.name, n.node.Epoch(), s.FramesSent, s.FramesReceived, s.DataFrames, s.Duplicates, s.SendErrors, strings.Join(drops, " "),
			s.GapsDetected, s.GapsRepaired, s.FramesLost, s.NacksSent, s.Retransmitted, s.RecvBuffer)
	}
}

// repairedOf returns how many frames the node recovered through repair.
func repairedOf(s engine.Stats) (uint64, bool) { return s.RetransmitsReceived, true }
