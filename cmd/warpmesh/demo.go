package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warpmesh/warpmesh/engine"
)

// demoConfig is the demo's command line.
type demoConfig struct {
	nodes      int
	duration   time.Duration // burst length when count is 0
	count      int           // invalidations in the burst, over all publishers
	keySize    int
	heartbeat  time.Duration
	rejoin     int // invalidations per node after the rejoin
	window     int // keys a publisher may have in flight to its slowest receiver; 0 = unpaced
	publishers int
}

// errDemoFailed: some live node missed invalidations.
var errDemoFailed = errors.New("not every live node received every invalidation")

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("demo", "demo [flags]", stderr)
	var cfg demoConfig
	fs.IntVar(&cfg.nodes, "nodes", 5, "`number` of nodes in the mesh (2..64)")
	fs.DurationVar(&cfg.duration, "duration", 3*time.Second, "how long the burst of invalidations runs (ignored with --count)")
	fs.IntVar(&cfg.count, "count", 0, "publish exactly this many invalidations in the burst instead of running for --duration")
	fs.IntVar(&cfg.count, "keys", 0, "alias of --count")
	fs.IntVar(&cfg.keySize, "key-size", 32, "key length in `bytes` (at least the 20 or so the demo's bookkeeping needs)")
	fs.DurationVar(&cfg.heartbeat, "heartbeat", 100*time.Millisecond, "membership heartbeat; a member is suspect after 3 and dead after 6 silent heartbeats")
	fs.IntVar(&cfg.rejoin, "rejoin-count", 1000, "invalidations each node publishes after the killed node rejoined")
	fs.IntVar(&cfg.window, "window", 4096, "`keys` a publisher may have in flight before its slowest receiver has them (0: no pacing; the engine has no flow control yet, so receivers may drop)")
	fs.IntVar(&cfg.publishers, "publishers", 0, "`number` of nodes publishing in the burst (default all)")
	logLevel := fs.String("log-level", "error", "engine log `level` on stderr: debug, info, warn or error")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return usageErrorf("unexpected argument %q", fs.Arg(0))
	case cfg.nodes < 2 || cfg.nodes > 64:
		return usageErrorf("invalid --nodes=%d: must be 2..64", cfg.nodes)
	case cfg.count < 0:
		return usageErrorf("invalid --count=%d: must not be negative", cfg.count)
	case cfg.count == 0 && cfg.duration <= 0:
		return usageErrorf("invalid --duration=%v: must be positive", cfg.duration)
	case cfg.keySize < 1 || cfg.keySize > 1024:
		return usageErrorf("invalid --key-size=%d: must be 1..1024", cfg.keySize)
	case cfg.heartbeat < 10*time.Millisecond:
		return usageErrorf("invalid --heartbeat=%v: must be at least 10ms", cfg.heartbeat)
	case cfg.rejoin < 1:
		return usageErrorf("invalid --rejoin-count=%d: must be at least 1", cfg.rejoin)
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*logLevel)); err != nil {
		return usageErrorf("invalid --log-level=%q", *logLevel)
	}
	d := &demo{cfg: cfg, out: stdout, tty: isTerminal(stdout)}
	d.mesh = &demoMesh{cfg: cfg, cluster: "demo-" + randomHex(4), start: time.Now(),
		logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lv}))}
	defer d.mesh.close()
	return d.run(ctx)
}

// isTerminal reports whether w is a character device (a terminal), where
// the progress line redraws itself in place.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand panics instead)
	return hex.EncodeToString(b)
}

// demo is one run: the mesh, what was published, and what was measured.
type demo struct {
	cfg  demoConfig
	out  io.Writer
	tty  bool
	mesh *demoMesh

	published [numPhases][]atomic.Uint64 // by phase, by publisher index
	burst     struct {
		elapsed, drained time.Duration
	}
	failure struct {
		victim             int
		oldEpoch, newEpoch uint64
		suspect, dead      [2]time.Duration // first, last observer
		rejoin             time.Duration
		dead0              *demoNode // the killed incarnation
		ok                 bool
	}
	discovery time.Duration
}

func (d *demo) printf(format string, a ...any) { fmt.Fprintf(d.out, format, a...) }

func (d *demo) run(ctx context.Context) error {
	cfg := d.cfg
	for i := range d.published {
		d.published[i] = make([]atomic.Uint64, cfg.nodes)
	}
	d.printf("Warp Mesh demo: %d nodes in this process, unicast on 127.0.0.1, seed n1, cluster %q\n", cfg.nodes, d.mesh.cluster)
	d.printf("heartbeat %v, suspect after %v, dead after %v\n\n", cfg.heartbeat, 3*cfg.heartbeat, 6*cfg.heartbeat)

	if err := d.discover(ctx); err != nil {
		return err
	}
	if err := d.coherence(ctx); err != nil {
		return err
	}
	if err := d.probe(ctx); err != nil {
		return err
	}
	if err := d.runBurst(ctx); err != nil {
		return err
	}
	if err := d.killAndRejoin(ctx); err != nil {
		return err
	}
	if err := d.rejoinRound(ctx); err != nil {
		return err
	}
	return d.summary()
}

// discover starts the nodes and waits until each knows all the others.
func (d *demo) discover(ctx context.Context) error {
	m := d.mesh
	m.nodes = make([]*demoNode, d.cfg.nodes)
	d.printf("== discovery\n")
	start := time.Now()
	for i := range m.nodes {
		port, err := freePort("127.0.0.1")
		if err != nil {
			return err
		}
		n, err := m.startNode(i, port, 0)
		if err != nil {
			return err
		}
		m.nodes[i] = n
		role := "seeds from n1"
		if i == 0 {
			role = "seed"
		}
		d.printf("  %-3s id %016x  %v  (%s)\n", n.name, n.node.ID(), n.node.Addr(), role)
	}
	want := d.cfg.nodes - 1
	err := poll(ctx, 10*time.Second, func() bool {
		for _, n := range m.nodes {
			if n.node.Stats().MembersAlive != want {
				return false
			}
		}
		return true
	})
	if err != nil {
		return fmt.Errorf("discovery: not every node found the %d others within 10s", want)
	}
	d.discovery = time.Since(start)
	d.printf("  every node knows the %d others after %v (seeds only point at n1; the rest comes from heartbeat digests)\n\n",
		want, d.discovery.Round(time.Millisecond))
	return nil
}

// coherence shows the preset cache at work: every node caches a value, one
// node writes a new one, and every other copy goes away.
func (d *demo) coherence(ctx context.Context) error {
	m := d.mesh
	const key = "config:color"
	d.printf("== coherence (a presets.Cache[string] on every node)\n")
	for _, n := range m.nodes[1:] {
		v, err := n.cache.GetOrLoad(ctx, key, func(context.Context) (string, error) { return "blue", nil })
		if err != nil || v != "blue" {
			return fmt.Errorf("coherence: %s load: %q, %v", n.name, v, err)
		}
	}
	d.printf("  n2..n%d loaded %s = \"blue\" from the (pretend) database\n", d.cfg.nodes, key)
	start := time.Since(m.start)
	if err := m.nodes[0].cache.Set(key, "red"); err != nil {
		return fmt.Errorf("coherence: n1 set: %w", err)
	}
	err := poll(ctx, 5*time.Second, func() bool {
		for _, n := range m.nodes[1:] {
			if _, ok := n.cache.Get(key); ok {
				return false
			}
		}
		return true
	})
	if err != nil {
		return errors.New("coherence: a stale copy survived n1's write for 5s")
	}
	var last time.Duration
	for _, n := range m.nodes[1:] {
		last = max(last, time.Duration(n.rx.otherAt.Load())-start)
	}
	d.printf("  n1 set %s = \"red\": every other node dropped its stale copy within %v\n\n", key, short(last))
	return nil
}

// publish sends keys of phase from node idx until n are out (n > 0) or ctx
// ends (n == 0). Publish blocks while the node's ring is full: that is the
// engine's own backpressure, the only pacing there is.
func (d *demo) publish(ctx context.Context, idx int, phase byte, n int) {
	node := d.mesh.nodes[idx].node
	ctr := &d.published[phaseIndex(phase)][idx]
	var key []byte
	for seq := 0; n == 0 || seq < n; seq++ {
		if ctx.Err() != nil {
			return
		}
		key = appendDemoKey(key[:0], phase, idx, seq, time.Since(d.mesh.start), d.cfg.keySize)
		if err := node.Publish(ctx, key, false); err != nil {
			return // ctx done (duration mode) or node closed
		}
		ctr.Add(1)
		if d.cfg.window > 0 && seq%64 == 63 {
			d.pace(ctx, idx, phase, uint64(seq+1))
		}
	}
}

// pace waits while more than the window of idx's keys are not yet at its
// slowest receiver. The demo can see every receiver's count because the
// whole mesh is in one process; it stands in for the receiver-driven flow
// control a real deployment gets from sizing (and, for losses, repair).
func (d *demo) pace(ctx context.Context, idx int, phase byte, sent uint64) {
	for ctx.Err() == nil {
		slowest := sent
		for _, n := range d.mesh.live() {
			if n.idx != idx {
				slowest = min(slowest, n.rx.from(phase, idx))
			}
		}
		if sent-slowest <= uint64(d.cfg.window) {
			return
		}
		time.Sleep(50 * time.Microsecond) // pacing, not synchronisation
	}
}

// expected returns how many keys of phase node idx should have: everything
// the others published.
func (d *demo) expected(phase byte, idx int) uint64 {
	var t uint64
	for p := range d.published[phaseIndex(phase)] {
		if p != idx {
			t += d.published[phaseIndex(phase)][p].Load()
		}
	}
	return t
}

func (d *demo) publishedTotal(phase byte) uint64 {
	var t uint64
	for p := range d.published[phaseIndex(phase)] {
		t += d.published[phaseIndex(phase)][p].Load()
	}
	return t
}

// complete reports whether every live node has everything of phase.
func (d *demo) complete(phase byte) bool {
	for _, n := range d.mesh.live() {
		if n.rx.distinct(phase) < d.expected(phase, n.idx) {
			return false
		}
	}
	return true
}

// awaitDelivery waits until every node has every key of phase, or until
// delivery stops making progress for stall.
func (d *demo) awaitDelivery(ctx context.Context, phase byte, stall time.Duration) {
	var last uint64
	lastChange := time.Now()
	for !d.complete(phase) && ctx.Err() == nil {
		var t uint64
		for _, n := range d.mesh.live() {
			t += n.rx.distinct(phase)
		}
		if t != last {
			last, lastChange = t, time.Now()
		} else if time.Since(lastChange) > stall {
			return
		}
		time.Sleep(2 * time.Millisecond) // polling interval
	}
}

// probeCount is how many single invalidations measure latency at rest.
const probeCount = 200

// probe sends single invalidations from n1, one at a time, each once every
// other node has the previous one: latency without queueing.
func (d *demo) probe(ctx context.Context) error {
	d.printf("== latency at rest: %d single invalidations from n1, one at a time\n", probeCount)
	node := d.mesh.nodes[0].node
	ctr := &d.published[phaseIndex(phaseProbe)][0]
	var key []byte
	for seq := range probeCount {
		key = appendDemoKey(key[:0], phaseProbe, 0, seq, time.Since(d.mesh.start), d.cfg.keySize)
		if err := node.Publish(ctx, key, false); err != nil {
			return err
		}
		ctr.Add(1)
		if err := poll(ctx, 2*time.Second, func() bool { return d.complete(phaseProbe) }); err != nil {
			return fmt.Errorf("latency probe %d: not delivered everywhere within 2s", seq)
		}
	}
	c := newCounts()
	for _, n := range d.mesh.nodes[1:] {
		n.rx.latency[phaseIndex(phaseProbe)].addTo(c)
	}
	q := quantiles(c, 0.5, 0.99)
	d.printf("  n1 → n2..n%d: p50 %v, p99 %v\n\n", d.cfg.nodes, short(q[0]), short(q[1]))
	return nil
}

// runBurst has every node publish at full speed, with a live progress line.
func (d *demo) runBurst(ctx context.Context) error {
	cfg := d.cfg
	pubs := cfg.nodes
	if cfg.publishers > 0 {
		pubs = min(cfg.publishers, cfg.nodes)
	}
	if cfg.count > 0 {
		d.printf("== burst: %d invalidations of %d-byte keys from %d nodes at once, at full speed\n", cfg.count, cfg.keySize, pubs)
	} else {
		d.printf("== burst: %v of invalidations (%d-byte keys) from %d nodes at once, at full speed\n", cfg.duration, cfg.keySize, pubs)
	}
	if cfg.window > 0 {
		d.printf("   (each publisher keeps at most %d keys in flight to its slowest receiver; --window 0 removes the limit)\n", cfg.window)
	}
	pctx, cancel := context.WithCancel(ctx)
	if cfg.count == 0 {
		pctx, cancel = context.WithTimeout(ctx, cfg.duration)
	}
	defer cancel()
	progress := d.startProgress(phaseBurst)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range d.mesh.nodes[:pubs] {
		share := 0
		if cfg.count > 0 {
			share = cfg.count / pubs
			if i < cfg.count%pubs {
				share++
			}
			if share == 0 {
				continue
			}
		}
		wg.Add(1)
		go func() { defer wg.Done(); d.publish(pctx, i, phaseBurst, share) }()
	}
	wg.Wait()
	d.burst.elapsed = time.Since(start)
	d.awaitDelivery(ctx, phaseBurst, 3*time.Second)
	d.burst.drained = time.Since(start)
	progress.stop()
	d.printf("\n")
	return ctx.Err()
}

// killAndRejoin aborts the last node (no goodbye), times its suspicion and
// death as the others see them, restarts it with the same id and port and
// times its rejoin.
func (d *demo) killAndRejoin(ctx context.Context) error {
	m := d.mesh
	f := &d.failure
	f.victim = len(m.nodes) - 1
	v := m.nodes[f.victim]
	id, port := v.node.ID(), v.port
	f.oldEpoch = v.node.Epoch()
	others := len(m.nodes) - 1
	d.printf("== failure: killing %s (%016x) without a goodbye\n", v.name, id)

	killed := time.Now()
	v.node.Abort()
	v.cache.Close()
	f.dead0 = v
	m.nodes[f.victim] = nil

	wait := 6*d.cfg.heartbeat*3 + 2*time.Second
	var suspects, deads map[int]time.Time
	err := poll(ctx, wait, func() bool {
		suspects = m.log.firsts(engine.EventSuspect, id, killed, nil)
		deads = m.log.firsts(engine.EventDead, id, killed, nil)
		return len(deads) == others
	})
	f.suspect = spread(suspects, killed)
	f.dead = spread(deads, killed)
	d.printf("  suspected by %d/%d nodes after %v … %v\n", len(suspects), others, f.suspect[0], f.suspect[1])
	d.printf("  declared dead by %d/%d nodes after %v … %v\n", len(deads), others, f.dead[0], f.dead[1])
	if err != nil {
		return fmt.Errorf("failure detection: only %d of %d nodes declared %s dead within %v", len(deads), others, v.name, wait)
	}

	restarted := time.Now()
	n, err := m.startNode(f.victim, port, id)
	if err != nil {
		return fmt.Errorf("restart: %w", err)
	}
	m.nodes[f.victim] = n
	f.newEpoch = n.node.Epoch()
	newer := func(e engine.Event) bool { return e.Member.Epoch > f.oldEpoch }
	var joins map[int]time.Time
	err = poll(ctx, 10*time.Second, func() bool {
		joins = m.log.firsts(engine.EventJoin, id, restarted, newer)
		return len(joins) == others && n.node.Stats().MembersAlive == others
	})
	f.rejoin = spread(joins, restarted)[1]
	d.printf("  restarted %s with the same id and port: epoch %d → %d\n", v.name, f.oldEpoch, f.newEpoch)
	if err != nil {
		return fmt.Errorf("rejoin: %d of %d nodes saw %s come back within 10s", len(joins), others, v.name)
	}
	d.printf("  rejoined: every node saw it join with the new epoch within %v, and it knows all %d others\n\n", f.rejoin, others)
	f.ok = true
	return nil
}

// spread returns the earliest and latest of times, relative to since.
func spread(times map[int]time.Time, since time.Time) [2]time.Duration {
	var r [2]time.Duration
	first := true
	for _, t := range times {
		dt := t.Sub(since).Round(time.Millisecond)
		if first || dt < r[0] {
			r[0] = dt
		}
		if first || dt > r[1] {
			r[1] = dt
		}
		first = false
	}
	return r
}

// rejoinRound has every node, the restarted one included, publish a few
// keys, to show the rejoined node sends and receives.
func (d *demo) rejoinRound(ctx context.Context) error {
	d.printf("== after the rejoin: %d invalidations from each node\n", d.cfg.rejoin)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range d.mesh.nodes {
		wg.Add(1)
		go func() { defer wg.Done(); d.publish(ctx, i, phaseRejoin, d.cfg.rejoin) }()
	}
	wg.Wait()
	d.awaitDelivery(ctx, phaseRejoin, 3*time.Second)
	if d.complete(phaseRejoin) {
		d.printf("  delivered to every node in %v\n\n", time.Since(start).Round(time.Millisecond))
	} else {
		d.printf("  delivery stalled after %v (see the summary)\n\n", time.Since(start).Round(time.Millisecond))
	}
	return ctx.Err()
}
