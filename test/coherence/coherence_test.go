package coherence

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/warpmesh/warpmesh/engine"
)

// long reports whether the long variant was asked for
// (WARPMESH_COHERENCE_LONG=1); it multiplies every phase by longFactor
// (WARPMESH_COHERENCE_FACTOR, default 10).
func long() bool { return os.Getenv("WARPMESH_COHERENCE_LONG") == "1" }

func longFactor() int {
	if !long() {
		return 1
	}
	if f, err := strconv.Atoi(os.Getenv("WARPMESH_COHERENCE_FACTOR")); err == nil && f > 0 {
		return f
	}
	return 10
}

// phase scales a scenario phase for the long variant.
func phase(d time.Duration) time.Duration { return d * time.Duration(longFactor()) }

// cutLength is how long a partition lasts: 1.5 s in CI (three times
// DeadAfter: each side declares the other dead), 8 s in the long variant
// (as the measurement; longer than the 5 s after which a node
// forgets a dead member), or WARPMESH_COHERENCE_CUT (a duration).
func cutLength() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("WARPMESH_COHERENCE_CUT")); err == nil && d > 0 {
		return d
	}
	if long() {
		return 8 * time.Second
	}
	return 1500 * time.Millisecond
}

// cutRounds is how many partitions a partition scenario runs: one in CI;
// in the long variant longFactor short cuts or a third as many long ones.
func cutRounds() int {
	switch {
	case !long():
		return 1
	case cutLength() >= 5*time.Second:
		return max(1, longFactor()/3)
	}
	return longFactor()
}

// summary collects one line per scenario for the end of the run.
var summary struct {
	sync.Mutex
	lines []string
	reads uint64
}

func report(name string, v verdict, tot *totals, elapsed time.Duration) {
	summary.Lock()
	defer summary.Unlock()
	summary.reads += v.Checked
	summary.lines = append(summary.lines, fmt.Sprintf("%-33s %9d reads  stale %-4d invalid %-3d behind %-7d max lag %-7v excused: cut %-6d stall %-4d flushes %-4d gap events %-4d loads %-7d not-ready loads %-6d %v",
		name, v.Checked, v.Stale, v.Invalid, v.Behind, v.MaxLag.Round(time.Millisecond), v.Excused, v.Starved, tot.cache.Flushes, tot.gapEvents, tot.cache.Loads, tot.cache.NotReadyLoads, elapsed.Round(time.Millisecond)))
}

func TestMain(m *testing.M) {
	code := m.Run()
	summary.Lock()
	if len(summary.lines) > 0 {
		fmt.Printf("coherence oracle (bound %v, long=%v):\n", Bound, long())
		for _, l := range summary.lines {
			fmt.Println("  " + l)
		}
		fmt.Printf("  total reads checked: %d\n", summary.reads)
	}
	summary.Unlock()
	os.Exit(code)
}

// baseWorkload is the CI workload: five instances, each writing one key
// every 2 ms (2500 writes/s in all, a fifth of them deletes, so a key is
// rewritten about every 1.6 s, longer than the bound: a missed
// invalidation stays visible) and reading as fast as it can, every
// incarnation warming its cache with every key as soon as its node has
// started.
func baseWorkload() workload {
	return workload{instances: 5, keys: 4000, writeEvery: 2 * time.Millisecond, deleteShare: 0.2, readers: 1, warmAll: true}
}

// scenario runs w on a fresh cluster, lets fault inject its faults while
// the workload runs, keeps the workload running for settle afterwards
// (reads then are held to the bound again), and checks every read.
func scenario(t *testing.T, w workload, settle time.Duration, fault func(c *cluster)) *cluster {
	if testing.Short() && !long() {
		t.Skip("-short")
	}
	t.Helper()
	begin := time.Now()
	c := newCluster(t, w)
	c.startAll()
	c.run()
	fault(c)
	pace(settle)
	v, tot := c.finish()
	elapsed := time.Since(begin)
	t.Logf("%v", v)
	for _, e := range v.StallExamples {
		t.Logf("%s", e)
	}
	for _, e := range v.CloseExamples {
		t.Logf("%s", e)
	}
	t.Logf("%v", &tot)
	t.Logf("writes %d, database loads %d, datagrams dropped by the fabric %d, reads refused by a closed cache %d, %s, in %v",
		c.db.writes.Load(), c.db.loads.Load(), c.fab.dropped.Load(), c.readErrors.Load(), c.stallSummary(), elapsed.Round(time.Millisecond))
	report(t.Name(), v, &tot, elapsed)
	if v.Stale > 0 || v.Invalid > 0 {
		for _, e := range v.Examples {
			t.Errorf("%s", e)
		}
		t.Errorf("%d stale and %d invalid reads out of %d (bound %v)", v.Stale, v.Invalid, v.Checked, Bound)
	}
	if v.Checked == 0 {
		t.Errorf("no reads checked")
	}
	return c
}

func TestCoherence(t *testing.T) {
	settle := Bound + 500*time.Millisecond // reads after the last fault are held to the bound too
	t.Run("steady", func(t *testing.T) {
		scenario(t, baseWorkload(), settle, func(c *cluster) { pace(phase(2500 * time.Millisecond)) })
	})
	t.Run("loss5", func(t *testing.T) {
		scenario(t, baseWorkload(), settle, func(c *cluster) {
			c.fab.setLoss(0.05)
			pace(phase(2500 * time.Millisecond))
			c.fab.setLoss(0)
		})
	})
	t.Run("rolling_restart", func(t *testing.T) {
		scenario(t, baseWorkload(), settle, func(c *cluster) {
			pace(500 * time.Millisecond)
			for range longFactor() {
				for _, in := range c.insts {
					c.restart(in, false)
					c.waitMesh(10 * time.Second) // the next pod goes once this one is in
					pace(200 * time.Millisecond)
				}
			}
		})
	})
	t.Run("kill_restart", func(t *testing.T) {
		scenario(t, baseWorkload(), settle, func(c *cluster) {
			pace(500 * time.Millisecond)
			for range longFactor() {
				for _, in := range c.insts {
					c.restart(in, true)
					c.waitMesh(10 * time.Second)
					pace(200 * time.Millisecond)
				}
			}
		})
	})
	t.Run("kill_restart_keyed", func(t *testing.T) {
		// With a keyring the members gossip names are vouched for rather
		// than challenged: the same kills and restarts (new id, new
		// port) with every member learned on another's word. (A restart
		// at its old address, whose former self the others still list,
		// is engine's TestVouchRefusesOwnAndLiveAddress.)
		w := baseWorkload()
		kr, err := engine.NewKeyring(bytes.Repeat([]byte{7}, engine.KeySize))
		if err != nil {
			t.Fatal(err)
		}
		w.keyring = kr
		scenario(t, w, settle, func(c *cluster) {
			pace(500 * time.Millisecond)
			for range longFactor() {
				for _, in := range c.insts {
					c.restart(in, true)
					c.waitMesh(10 * time.Second)
					pace(200 * time.Millisecond)
				}
			}
		})
	})
	t.Run("partition", func(t *testing.T) {
		scenario(t, baseWorkload(), settle, func(c *cluster) {
			for range cutRounds() {
				pace(500 * time.Millisecond)
				heal := c.partition([]int{0, 1}, []int{2, 3, 4}, true)
				pace(cutLength())
				heal()
				c.waitMesh(10 * time.Second)
			}
		})
	})
	t.Run("inbound_partition", func(t *testing.T) {
		c := scenario(t, baseWorkload(), settle, func(c *cluster) {
			for range cutRounds() {
				pace(500 * time.Millisecond)
				heal := c.partition([]int{1, 2, 3, 4}, []int{0}, false) // instance 0 hears no one; they hear it
				pace(cutLength())
				heal()
				c.waitMesh(10 * time.Second)
			}
		})
		// The origins were never down and their retransmit rings hold
		// what instance 0 missed: on the heal it must NACK and be
		// repaired, not give the gap up as origin_dead.
		for _, l := range c.healReport() {
			t.Logf("%s", l)
		}
		for _, in := range c.insts {
			st := in.cur.Load().node.Stats()
			t.Logf("instance %d: challenges sent %d (suppressed %d), responses sent %d (suppressed %d), validations %d",
				in.idx, st.ChallengesSent, st.ChallengesSuppressed, st.ResponsesSent, st.ResponsesSuppressed, st.Validations)
		}
		g := &c.insts[0].cur.Load().gaps
		t.Logf("instance 0 (cut off) raised %d Gap events: evicted %d, unreachable %d, origin_dead %d, new_epoch %d, too_old %d",
			g.events.Load(), g.byReason[engine.GapEvicted].Load(), g.byReason[engine.GapUnreachable].Load(),
			g.byReason[engine.GapOriginDead].Load(), g.byReason[engine.GapNewEpoch].Load(), g.byReason[engine.GapTooOld].Load())
		if n := g.byReason[engine.GapOriginDead].Load(); n > 0 {
			t.Errorf("instance 0 gave up %d gaps as origin_dead after an inbound-only partition; the origins were alive and held the frames", n)
		}
	})
	t.Run("mass_restart", func(t *testing.T) {
		scenario(t, baseWorkload(), settle, func(c *cluster) {
			for range longFactor() {
				pace(500 * time.Millisecond)
				c.massRestart(false)
				c.waitMesh(10 * time.Second)
			}
		})
	})
	t.Run("join", func(t *testing.T) {
		// One publisher walks 20000 keys in order (about 5000 writes/s, so
		// a key is rewritten every few seconds, long after the bound); a
		// bystander is the seed. Each new instance's reader warms its cache
		// the moment New returns, from the publisher's position on: the
		// keys about to be written. An invalidation of one of them that the
		// publisher sends before it lists the new node leaves a stale entry
		// the oracle sees on the next read after the bound.
		w := workload{instances: 2, keys: 20000, writeEvery: 200 * time.Microsecond, writers: 1, sequential: true, readers: 1, warm: 2000}
		scenario(t, w, settle, func(c *cluster) {
			pace(300 * time.Millisecond)
			for i := range 4 * longFactor() {
				c.addInstance(1)
				pace(400 * time.Millisecond)
				if i >= 3 {
					// At most four joined instances at a time; the oldest has
					// been read for over a second since it joined.
					c.remove(c.insts[len(c.insts)-4])
				}
			}
		})
	})
}
