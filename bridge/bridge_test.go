package bridge

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// load stores key in m's cache through a load (a load publishes nothing).
func (m *testMesh) load(t *testing.T, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if _, err := m.cache.GetOrLoad(context.Background(), k, func(context.Context) (string, error) { return "v", nil }); err != nil {
			t.Fatal(err)
		}
		if !m.cached(k) {
			t.Fatalf("%s: %s not cached after a load", m.name, k)
		}
	}
}

// An invalidation on mesh A's cache reaches mesh B's and C's caches, exact
// keys and prefixes alike, and nothing comes back to A.
func TestThreeMeshesThroughNATS(t *testing.T) {
	ns := startNATS(t, false)
	a := newTestMesh(t, ns, "A", 1, nil)
	b := newTestMesh(t, ns, "B", 1, nil)
	c := newTestMesh(t, ns, "C", 1, nil)
	linked(t, a, b, c)

	b.load(t, "user:1", "user:2", "order:1")
	c.load(t, "user:1", "user:2", "order:1")
	if err := a.cache.Delete("order:1"); err != nil {
		t.Fatal(err)
	}
	if err := a.cache.DeletePrefix("user:"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "A's invalidations in B's and C's caches", func() bool {
		return !b.cached("order:1") && !b.cached("user:1") && !b.cached("user:2") &&
			!c.cached("order:1") && !c.cached("user:1") && !c.cached("user:2")
	})
	for _, m := range []*testMesh{b, c} {
		if n := m.log.count("order:1"); n != 1 {
			t.Errorf("%s applied order:1 %d times, want 1", m.name, n)
		}
		if !m.log.prefix["user:"] {
			t.Errorf("%s: user: did not arrive as a prefix", m.name)
		}
	}
	// B's invalidation reaches A and C; A's own never came back to A.
	a.load(t, "k")
	if err := b.cache.Delete("k"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "B's invalidation in A and C", func() bool {
		return !a.cached("k") && c.log.count("k") == 1
	})
	if n := a.log.count("order:1"); n != 0 {
		t.Fatalf("A's own invalidation came back to A %d times", n)
	}
	for _, m := range []*testMesh{a, b, c} {
		s := m.bridges[0].Stats()
		if s.Dropped() != 0 {
			t.Errorf("%s dropped %v", m.name, s.Drops)
		}
	}
	if s := a.bridges[0].Stats(); s.Imported != 1 { // k from B only
		t.Fatalf("A's bridge imported %d, want 1 (B's k)", s.Imported)
	}
}

// Two bridges per mesh: each invalidation reaches the far application
// once, whichever way it goes, and neither bridge re-exports what its
// sibling imported.
func TestTwoBridgesPerMeshDeliverOnce(t *testing.T) {
	ns := startNATS(t, false)
	a := newTestMesh(t, ns, "A", 2, nil)
	b := newTestMesh(t, ns, "B", 2, nil)
	linked(t, a, b)
	const n = 2000
	for i := range n {
		if err := a.app.Invalidate(fmt.Sprintf("a%d", i)); err != nil {
			t.Fatal(err)
		}
		if err := b.app.Invalidate(fmt.Sprintf("b%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "every key on the far side", func() bool {
		return a.log.distinct() == n && b.log.distinct() == n
	})
	// Let late copies arrive: wait until both bridges of each side have
	// received the second exporter's copies (dedup counted them).
	waitFor(t, 10*time.Second, "second copies deduplicated", func() bool {
		var da, db uint64
		for _, x := range a.bridges {
			da += x.Stats().Duplicates + x.Stats().Standby
		}
		for _, x := range b.bridges {
			db += x.Stats().Duplicates + x.Stats().Standby
		}
		return da >= 2*n && db >= 2*n // per mesh: leader's dups n, standby's n+n
	})
	for i := range n {
		if c := b.log.count(fmt.Sprintf("a%d", i)); c != 1 {
			t.Fatalf("B applied a%d %d times, want 1", i, c)
		}
		if c := a.log.count(fmt.Sprintf("b%d", i)); c != 1 {
			t.Fatalf("A applied b%d %d times, want 1", i, c)
		}
		if c := a.log.count(fmt.Sprintf("a%d", i)); c != 0 {
			t.Fatalf("A's own a%d came back %d times", i, c)
		}
	}
	var notRe uint64
	for _, x := range append(a.bridges, b.bridges...) {
		notRe += x.Stats().NotReexported
	}
	if notRe < 2*n { // each mesh's standby heard its leader's n imports
		t.Fatalf("bridges declined to re-export %d imports, want at least %d", notRe, 2*n)
	}
}

// Core NATS: when nats-server dies, the far side flushes (its caches
// cannot know what they miss); when it comes back, invalidations flow again
// after one more flush.
func TestCoreNATSRestartFlushes(t *testing.T) {
	t.Parallel() // condition-based, with margins for a loaded machine
	ns := startNATS(t, false)
	a := newTestMesh(t, ns, "A", 1, nil)
	b := newTestMesh(t, ns, "B", 1, nil)
	linked(t, a, b)
	b.load(t, "x", "y")
	before := b.flushes()
	ns.stop()
	waitFor(t, 5*time.Second, "B flushed after losing NATS", func() bool {
		return b.flushes() > before && !b.cached("x") && !b.cached("y")
	})
	if s := b.bridges[0].Stats(); s.Flushes[FlushDisconnect] == 0 {
		t.Fatalf("flushes %v, want a disconnect flush", s.Flushes)
	}
	ns.start()
	waitFor(t, 10*time.Second, "reconnected, with a reconnect flush", func() bool {
		return b.bridges[0].Connected() && a.bridges[0].Connected() && b.bridges[0].Stats().Flushes[FlushReconnect] > 0
	})
	b.load(t, "z")
	waitFor(t, 10*time.Second, "A's invalidation of z reaches B after the restart", func() bool {
		if err := a.app.Invalidate("z"); err != nil {
			t.Fatal(err)
		}
		return !b.cached("z")
	})
}

// JetStream: a nats-server restart replays what the link missed, and
// nothing is flushed.
func TestJetStreamRestartReplays(t *testing.T) {
	ns := startNATS(t, true)
	a := newTestMesh(t, ns, "A", 1, jetStreamTo("B"))
	b := newTestMesh(t, ns, "B", 1, jetStreamTo("A"))
	linked(t, a, b)
	b.load(t, "before", "during")
	if err := a.app.Invalidate("before"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "before invalidated through JetStream", func() bool { return !b.cached("before") })
	flushes := b.flushes()
	ns.stop()
	waitFor(t, 5*time.Second, "both bridges see the outage", func() bool {
		return !a.bridges[0].Connected() && !b.bridges[0].Connected()
	})
	if err := a.app.Invalidate("during"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "A's bridge holds during for NATS", func() bool {
		return a.bridges[0].Stats().Exported >= 2
	})
	ns.start()
	waitFor(t, 15*time.Second, "during replayed into B after the restart", func() bool { return !b.cached("during") })
	if got := b.flushes(); got != flushes {
		t.Fatalf("B flushed %d times across the restart, want 0 (bridge flushes %v)", got-flushes, b.bridges[0].Stats().Flushes)
	}
	if n := b.log.count("during"); n != 1 {
		t.Fatalf("during applied %d times, want 1", n)
	}
}

// A bridge restart: the restarted importer flushes its mesh once (it
// missed what came meanwhile) and invalidations flow again; the far side
// of a restarted exporter flushes too.
func TestBridgeRestart(t *testing.T) {
	t.Parallel() // condition-based, with margins for a loaded machine
	ns := startNATS(t, false)
	a := newTestMesh(t, ns, "A", 1, nil)
	b := newTestMesh(t, ns, "B", 1, nil)
	linked(t, a, b)

	b.load(t, "x")
	if err := b.bridges[0].Close(); err != nil {
		t.Fatal(err)
	}
	b.bridges = b.bridges[:0]
	if err := a.app.Invalidate("x"); err != nil { // lost: nobody imports for B
		t.Fatal(err)
	}
	b.addBridge()
	linked(t, a, b)
	waitFor(t, 5*time.Second, "B flushed by its new bridge", func() bool { return !b.cached("x") })
	if s := b.bridges[0].Stats(); s.Flushes[FlushTakeover] != 1 {
		t.Fatalf("new bridge flushes %v, want one takeover", s.Flushes)
	}

	// The exporter side: A's bridge restarts; B flushes (A's mesh went
	// unexported for a while) and then hears A again.
	b.load(t, "y")
	fl := b.bridges[0].Stats().Flushed()
	if err := a.bridges[0].Close(); err != nil {
		t.Fatal(err)
	}
	a.bridges = a.bridges[:0]
	a.addBridge()
	linked(t, a, b)
	waitFor(t, 5*time.Second, "B flushed for A's bridge restart", func() bool {
		return b.bridges[0].Stats().Flushed() > fl && !b.cached("y")
	})
	b.load(t, "z")
	if err := a.app.Invalidate("z"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "z through the restarted bridge", func() bool { return !b.cached("z") })
}

// The standby takes over when the importing bridge dies, flushing once.
func TestStandbyTakesOver(t *testing.T) {
	t.Parallel() // condition-based, with margins for a loaded machine
	ns := startNATS(t, false)
	a := newTestMesh(t, ns, "A", 1, nil)
	b := newTestMesh(t, ns, "B", 2, nil)
	linked(t, a, b)
	var leader, standby *Bridge
	for _, x := range b.bridges {
		if x.Leader() {
			leader = x
		} else {
			standby = x
		}
	}
	b.load(t, "k")
	leader.Close()
	b.bridges = []*Bridge{standby}
	// The takeover flush follows the switch to leader (bridge.go): wait
	// for both, rather than read the counter the moment Leader turns.
	waitFor(t, 5*time.Second, "the standby to import and flush for the takeover", func() bool {
		return standby.Leader() && standby.Stats().Flushes[FlushTakeover] != 0
	})
	// The takeover's Gap reaches B's cache asynchronously; until it has
	// flushed for it, loads pass through uncached (presets: nothing is
	// stored while a Gap is pending).
	waitFor(t, 5*time.Second, "B to cache k2 once the takeover's Gap is flushed", func() bool {
		if _, err := b.cache.GetOrLoad(context.Background(), "k2", func(context.Context) (string, error) { return "v", nil }); err != nil {
			t.Fatal(err)
		}
		return b.cached("k2")
	})
	if err := a.app.Invalidate("k2"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "k2 through the former standby", func() bool { return !b.cached("k2") })
}

// Bad input from NATS is dropped and counted by reason, never applied; a
// forged stream that skips a batch sequence makes the bridge flush.
func TestBadInputDroppedAndGapFlushes(t *testing.T) {
	t.Parallel() // condition-based, with margins for a loaded machine
	ns := startNATS(t, false)
	b := newTestMesh(t, ns, "B", 1, nil)
	waitFor(t, 5*time.Second, "B's bridge imports", func() bool { return b.bridges[0].Leader() })
	nc, err := nats.Connect(ns.url())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	good := func(mesh string, seq uint64, key string) []byte {
		var e exportBuf
		e.reset(AppendBatchHeader(nil, &BatchHeader{Bridge: 7, Stream: 1, Mesh: []byte(mesh)}))
		e.add(11, 1, seq, 0, []byte(key), false, 1<<16)
		e.closeGroup()
		setBatchSeq(e.b, seq)
		setBatchGroups(e.b, e.groups)
		return e.b
	}
	truncated := good("X", 1, "never")
	truncated = truncated[:len(truncated)-2]
	badVer := good("X", 1, "never")
	badVer[offVersion] = 9
	cases := []struct {
		subject string
		data    []byte
		reason  DropReason
	}{
		{"warpmesh.inv.X", []byte("hi"), DropShort},
		{"warpmesh.inv.X", append([]byte("XX"), make([]byte, 40)...), DropBadMagic},
		{"warpmesh.inv.X", badVer, DropBadVersion},
		{"warpmesh.inv.X", truncated, DropMalformed},
		{"warpmesh.inv.X", good("Y", 1, "never"), DropWrongMesh},
		{"warpmesh.inv.B", good("B", 1, "never"), DropOwnMesh},
	}
	for _, c := range cases {
		if err := nc.Publish(c.subject, c.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "every bad message counted", func() bool {
		s := b.bridges[0].Stats()
		for _, c := range cases {
			if s.Drops[c.reason] == 0 {
				return false
			}
		}
		return true
	})
	if n := b.log.count("never"); n != 0 {
		t.Fatalf("a dropped batch was applied %d times", n)
	}

	// A forged remote stream X: batch 1, then 3 — batch 2 was lost.
	fl := b.bridges[0].Stats().Flushes
	for _, seq := range []uint64{1, 3} {
		if err := nc.Publish("warpmesh.inv.X", good("X", seq, fmt.Sprintf("x%d", seq))); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "the gap flushed B, both keys applied", func() bool {
		s := b.bridges[0].Stats()
		return s.Flushes[FlushGap] > fl[FlushGap] && b.log.count("x1") == 1 && b.log.count("x3") == 1
	})
	// A replay of batch 3 is stale.
	if err := nc.Publish("warpmesh.inv.X", good("X", 3, "x3")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the replayed batch dropped as stale", func() bool {
		return b.bridges[0].Stats().Drops[DropStaleBatch] == 1
	})
	// X's only stream goes silent: B flushes again.
	waitFor(t, 5*time.Second, "X's silence flushed B", func() bool {
		return b.bridges[0].Stats().Flushes[FlushStreamTimeout] > fl[FlushStreamTimeout]
	})
	if n := b.log.count("x3"); n != 1 {
		t.Fatalf("x3 applied %d times, want 1", n)
	}
}

// jetStreamTo selects JetStream mode importing from remote.
func jetStreamTo(remote string) func(*Options) {
	return func(o *Options) {
		o.JetStream = &JetStreamOptions{}
		o.Remotes = []string{remote}
	}
}

// JetStream: a bridge restart, and a takeover by a standby, replay what
// no bridge imported meanwhile from the mesh's durable consumer; nothing
// is flushed.
func TestJetStreamBridgeRestartAndTakeoverReplay(t *testing.T) {
	ns := startNATS(t, true)
	a := newTestMesh(t, ns, "A", 1, jetStreamTo("B"))
	b := newTestMesh(t, ns, "B", 1, jetStreamTo("A"))
	linked(t, a, b)
	flushes := b.flushes()

	// Restart B's only bridge; A invalidates while B has none.
	if err := b.bridges[0].Close(); err != nil {
		t.Fatal(err)
	}
	b.bridges = b.bridges[:0]
	if err := a.app.Invalidate("while-down"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "A exported while-down", func() bool { return a.bridges[0].Stats().Exported >= 1 })
	b.addBridge()
	waitFor(t, 10*time.Second, "while-down replayed into B", func() bool { return b.log.count("while-down") == 1 })

	// A standby joins; the importer dies; A invalidates before the
	// standby notices; the standby takes over and replays it.
	standby := b.addBridge()
	importer := b.bridges[0]
	waitFor(t, 10*time.Second, "the standby hears the importer", func() bool {
		return importer.Leader() && !standby.Leader() && standby.Node().Stats().MembersAlive >= 2
	})
	importer.Close()
	b.bridges = []*Bridge{standby}
	if err := a.app.Invalidate("in-takeover"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "in-takeover replayed by the new importer", func() bool {
		return standby.Leader() && b.log.count("in-takeover") >= 1
	})
	if got := b.flushes(); got != flushes {
		t.Fatalf("B flushed %d times across a bridge restart and a takeover, want 0 (B's app gaps %v; standby %+v; importer %+v)",
			got-flushes, b.app.Stats().GapsGivenUp, standby.Stats(), importer.Stats())
	}
	if s := standby.Stats(); s.Flushed() != 0 {
		t.Fatalf("the new importer asked for flushes %v", s.Flushes)
	}
}

// JetStream with FlushWhileCutOff: while cut off, the importer flushes as
// in core mode; after the restart the link resumes.
func TestJetStreamFlushWhileCutOff(t *testing.T) {
	ns := startNATS(t, true)
	a := newTestMesh(t, ns, "A", 1, jetStreamTo("B"))
	b := newTestMesh(t, ns, "B", 1, func(o *Options) {
		jetStreamTo("A")(o)
		o.JetStream.FlushWhileCutOff = true
	})
	linked(t, a, b)
	before := b.flushes()
	ns.stop()
	waitFor(t, 10*time.Second, "flushes while cut off", func() bool {
		return b.bridges[0].Stats().Flushes[FlushDisconnected] >= 1 && b.flushes() > before
	})
	ns.start()
	b.load(t, "after")
	waitFor(t, 15*time.Second, "A's invalidation through the resumed link", func() bool {
		if err := a.app.Invalidate("after"); err != nil {
			t.Fatal(err)
		}
		return b.log.count("after") >= 1
	})
}
