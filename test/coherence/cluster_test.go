package coherence

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warpmesh/warpmesh/codec"
	"github.com/warpmesh/warpmesh/engine"
	"github.com/warpmesh/warpmesh/internal/testnet"
	"github.com/warpmesh/warpmesh/presets"
)

// Timeouts of every node in the oracle's clusters, and the staleness
// bound derived from them.
const (
	heartbeat     = 50 * time.Millisecond
	suspectAfter  = 250 * time.Millisecond
	deadAfter     = 500 * time.Millisecond
	repairTimeout = 500 * time.Millisecond
	// slack absorbs scheduling on a loaded two-core machine: a receive,
	// timer or event goroutine can wait that long for a core (250 ms, or
	// 500 ms under the race detector).
	slack = raceSlack
	// Bound is the staleness the oracle allows: a lost invalidation is
	// noticed from the next frame, HWM announcement or heartbeat (two
	// heartbeats cover one lost announcement), repaired or given up with a
	// Gap (which flushes the cache) within RepairTimeout, plus slack.
	Bound = 2*heartbeat + repairTimeout + slack
)

var quietLogger = slog.New(slog.NewTextHandler(io.Discard, nil))

// workload shapes a cluster's traffic.
type workload struct {
	instances   int
	keys        int
	writeEvery  time.Duration   // per writer (one writer per writing instance)
	writers     int             // instances 0..writers-1 write; 0 means every instance
	deleteShare float64         // share of writes that are deletes
	readers     int             // reader goroutines per instance
	sequential  bool            // writers walk their keys in order instead of at random
	warm        int             // keys a reader of a joining instance loads first, from the writers' position on
	warmAll     bool            // every new incarnation's reader loads every key first
	keyring     *engine.Keyring // every node seals its frames (members named by others are then vouched for)
}

// cluster is N service instances, each a presets.Cache on its own
// engine.Node, sharing one database, with writers and readers running
// against them while a scenario injects faults.
type cluster struct {
	t     testing.TB
	w     workload
	db    *database
	fab   *fabric
	insts []*instance
	stop  chan struct{}
	wg    sync.WaitGroup
	ctx   context.Context

	mu      sync.Mutex
	reads   [][]read
	cuts    []cut
	stalls  []stall
	incs    [][]*incarnation // per instance, every incarnation in boot order
	retired totals

	writePos   atomic.Int64  // the next key instance 0's writer writes (sequential workloads)
	readErrors atomic.Uint64 // reads that found their instance's cache closed (restart), not recorded
}

// instance is one service instance across its incarnations (restarts
// give it a new node with a new id and a new cache).
type instance struct {
	idx int
	mu  sync.RWMutex // a write holds it shared; a restart holds it exclusively
	cur atomic.Pointer[incarnation]
}

// incarnation is one boot of an instance: its node, cache and socket.
type incarnation struct {
	cache  *presets.Cache[record]
	node   *engine.Node
	conn   *faultyConn
	id     atomic.Uint64 // the node's id, once New returned
	packed atomic.Uint64 // highest sequence this node packed its own invalidations into
	gaps   gapCount

	bootAt, retiredAt int64        // oracle clock; retiredAt 0 while live
	readyAt           atomic.Int64 // when EventReady was delivered; 0 before
	recvMu            sync.Mutex
	recv              []received  // invalidations applied from other nodes
	sent              []sentKey   // first copies of DATA frames written, per key record and destination
	ctrl              []ctrlSent  // control frames this node wrote (type, high-water mark, destination)
	packs             []packedKey // own invalidations as the sender packed them (EchoLocal)
	sets              []setDone   // the writer's Set/Delete calls through this node's cache
	events            []eventAt   // membership and readiness events this node raised
}

func newCluster(t testing.TB, w workload) *cluster {
	if w.writers == 0 {
		w.writers = w.instances
	}
	if w.readers == 0 {
		w.readers = 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	c := &cluster{t: t, w: w, db: newDatabase(w.keys, time.Now()), fab: &fabric{}, stop: make(chan struct{}), ctx: ctx}
	for i := 0; i < w.instances; i++ {
		c.insts = append(c.insts, &instance{idx: i})
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		probeStalls(c.db.now, c.stop, func(s stall) {
			c.mu.Lock()
			c.stalls = append(c.stalls, s)
			c.mu.Unlock()
		})
	}()
	t.Cleanup(func() {
		for _, in := range c.insts {
			if inc := in.cur.Load(); inc != nil {
				inc.cache.Close()
			}
		}
	})
	return c
}

// peers lists the addresses of the live incarnations other than skip's.
func (c *cluster) peers(skip int) []string {
	var ps []string
	for _, in := range c.insts {
		if in.idx == skip {
			continue
		}
		if inc := in.cur.Load(); inc != nil {
			ps = append(ps, inc.conn.LocalAddr().String())
		}
	}
	return ps
}

// boot starts a new incarnation of in on conn, seeded with peers, and
// makes it current: readers load through it from the moment New returns.
func (c *cluster) boot(in *instance, conn *faultyConn, peers []string) *incarnation {
	c.t.Helper()
	inc := &incarnation{conn: conn}
	inc.gaps.now = c.db.now
	conn.sends = func(h *codec.Header, payload []byte, to netip.AddrPort, dropped bool) {
		if h.Origin != inc.id.Load() && inc.id.Load() != 0 {
			return
		}
		at := c.db.now()
		if h.Type != codec.TypeData {
			inc.recvMu.Lock()
			if len(inc.ctrl) < maxCtrlLog {
				inc.ctrl = append(inc.ctrl, ctrlSent{typ: h.Type, at: at, hwm: h.Seq, to: to, dropped: dropped})
			}
			inc.recvMu.Unlock()
			return
		}
		it := codec.NewRecordIter(payload, h.Count)
		inc.recvMu.Lock()
		for rec, ok := it.Next(); ok; rec, ok = it.Next() {
			if k := keyIndex(rec.Key); k >= 0 {
				inc.sent = append(inc.sent, sentKey{key: k, at: at, seq: h.Seq, to: to, dropped: dropped, retrans: h.Flags&codec.FlagRetransmit != 0})
			}
		}
		inc.recvMu.Unlock()
	}
	opts := engine.Options{
		Port:          engine.AnyPort,
		UnicastOnly:   true,
		Peers:         peers,
		Heartbeat:     heartbeat,
		SuspectAfter:  suspectAfter,
		DeadAfter:     deadAfter,
		RepairTimeout: repairTimeout,
		Cluster:       "coherence",
		Logger:        quietLogger,
		PublishRing:   1 << 16,
		Transport:     conn,
		EchoLocal:     true,
		Keyring:       c.w.keyring,
	}
	opts.OnEvent = func(e engine.Event) {
		if e.Type == engine.EventReady {
			inc.readyAt.Store(c.db.now())
		}
		if e.Type != engine.EventGap {
			inc.recvMu.Lock()
			inc.events = append(inc.events, eventAt{at: c.db.now(), typ: e.Type, member: e.Member.ID})
			inc.recvMu.Unlock()
		}
		inc.gaps.onEvent(e)
	}
	opts.OnInvalidate = func(inv engine.Invalidation) {
		id := inc.id.Load()
		if id != 0 && inv.Origin == id {
			if inv.Seq > inc.packed.Load() {
				inc.packed.Store(inv.Seq) // only the sender goroutine packs
			}
			if k := keyIndex(inv.Key); k >= 0 {
				at := c.db.now()
				inc.recvMu.Lock()
				inc.packs = append(inc.packs, packedKey{key: k, at: at, seq: inv.Seq})
				inc.recvMu.Unlock()
			}
			return
		}
		if k := keyIndex(inv.Key); k >= 0 {
			at := c.db.now()
			inc.recvMu.Lock()
			inc.recv = append(inc.recv, received{key: k, at: at})
			inc.recvMu.Unlock()
		}
	}
	cache, err := presets.NewMeshEventual[record](opts, presets.WithMaxEntries(4*c.w.keys))
	if err != nil {
		conn.Close()
		c.t.Fatalf("instance %d: %v", in.idx, err)
	}
	inc.cache, inc.node = cache, cache.Node()
	inc.id.Store(inc.node.ID())
	in.cur.Store(inc)
	inc.bootAt = c.db.now()
	c.mu.Lock()
	for len(c.incs) <= in.idx {
		c.incs = append(c.incs, nil)
	}
	c.incs[in.idx] = append(c.incs[in.idx], inc)
	c.mu.Unlock()
	return inc
}

func (c *cluster) listen() *faultyConn {
	c.t.Helper()
	conn, err := c.fab.listen(0)
	if err != nil {
		c.t.Fatal(err)
	}
	return conn
}

// startAll boots every instance, each seeded with those before it, and
// waits until every node sees every other alive.
func (c *cluster) startAll() {
	for _, in := range c.insts {
		c.boot(in, c.listen(), c.peers(in.idx))
	}
	c.waitMesh(10 * time.Second)
}

func (c *cluster) waitMesh(d time.Duration) {
	c.t.Helper()
	testnet.WaitFor(c.t, d, "every node to see every other alive", func() bool {
		for _, in := range c.insts {
			inc := in.cur.Load()
			if inc == nil || inc.node.Stats().MembersAlive < len(c.insts)-1 {
				return false
			}
		}
		return true
	})
}

// retire takes in's current incarnation away; readers skip the instance
// until the next boot. in.mu must be held.
func (c *cluster) retire(in *instance, kill bool) {
	c.t.Helper()
	inc := in.cur.Swap(nil)
	if inc == nil {
		return
	}
	if kill {
		// A crash drops what the node has not sent yet. The writer is
		// paused (in.mu), so wait until the last invalidation it published
		// has left the socket: every acknowledged write was sent, as for a
		// process killed between requests.
		// Published counts what entered the publish ring, RecordsSent
		// what was packed into finished frames; packed is the frame of the
		// last record packed, dataSeq the last frame handed to the socket.
		// A stalled process can take seconds to get there (the long
		// variant has seen 2 s stalls); the deadline only catches a hang.
		deadline := time.Now().Add(30 * time.Second)
		for {
			st := inc.node.Stats()
			if st.RecordsSent >= st.Published && inc.conn.dataSeq.Load() >= inc.packed.Load() {
				break
			}
			if time.Now().After(deadline) {
				c.t.Fatalf("instance %d: its last invalidations never left: published %d, packed %d, last frame packed %d, last frame written %d, members alive %d",
					in.idx, st.Published, st.RecordsSent, inc.packed.Load(), inc.conn.dataSeq.Load(), st.MembersAlive)
			}
			<-time.After(time.Millisecond) // polling the sender's progress
		}
		inc.node.Abort()
	}
	inc.cache.Close()
	c.mu.Lock()
	inc.retiredAt = c.db.now()
	c.retired.add(inc)
	c.mu.Unlock()
}

// restart replaces in with a new incarnation: a new node with a new id on
// a new port (as a new pod), seeded with the live instances.
func (c *cluster) restart(in *instance, kill bool) *incarnation {
	in.mu.Lock()
	defer in.mu.Unlock()
	c.retire(in, kill)
	return c.boot(in, c.listen(), c.peers(in.idx))
}

// massRestart retires every instance at once, then boots them all, each
// seeded with every other new address.
func (c *cluster) massRestart(kill bool) {
	for _, in := range c.insts {
		in.mu.Lock()
	}
	for _, in := range c.insts {
		c.retire(in, kill)
	}
	conns := make([]*faultyConn, len(c.insts))
	for i := range conns {
		conns[i] = c.listen()
	}
	for i, in := range c.insts {
		var peers []string
		for j, cn := range conns {
			if j != i {
				peers = append(peers, cn.LocalAddr().String())
			}
		}
		c.boot(in, conns[i], peers)
	}
	for _, in := range c.insts {
		in.mu.Unlock()
	}
}

// remove retires in for good (a scale-down).
func (c *cluster) remove(in *instance) {
	in.mu.Lock()
	defer in.mu.Unlock()
	c.retire(in, false)
}

// addInstance boots one more instance seeded with the given instances
// and starts its readers at once: they warm the cache (workload.warm) the
// moment New returns.
func (c *cluster) addInstance(seeds ...int) *instance {
	in := &instance{idx: len(c.insts)}
	var peers []string
	for _, s := range seeds {
		peers = append(peers, c.insts[s].cur.Load().conn.LocalAddr().String())
	}
	c.mu.Lock()
	c.insts = append(c.insts, in)
	c.mu.Unlock()
	c.boot(in, c.listen(), peers)
	for r := 0; r < c.w.readers; r++ {
		c.wg.Add(1)
		go c.reader(in, c.w.warm)
	}
	return in
}

// run starts the writers and readers.
func (c *cluster) run() {
	for _, in := range c.insts {
		if in.idx < c.w.writers {
			c.wg.Add(1)
			go c.writer(in)
		}
		c.startReaders(in)
	}
}

func (c *cluster) startReaders(in *instance) {
	for r := 0; r < c.w.readers; r++ {
		c.wg.Add(1)
		go c.reader(in, 0)
	}
}

// finish stops the workload and returns the verdict over every read.
func (c *cluster) finish() (verdict, totals) {
	close(c.stop)
	c.wg.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	tot := c.retired
	for _, in := range c.insts {
		if inc := in.cur.Load(); inc != nil {
			tot.add(inc)
		}
	}
	return check(c.db, c.reads, c.cuts, c.stalls, c.sentToReader, slack, c.explain, Bound), tot
}

func (c *cluster) stopped() bool {
	select {
	case <-c.stop:
		return true
	default:
		return false
	}
}

// writer updates the database, then Sets or Deletes through its
// instance's cache. It owns the keys k with k mod writers == its index, so
// two writers never race on a key (a Set of an older version after a
// newer one's invalidation would be the application's bug, not the
// mesh's).
func (c *cluster) writer(in *instance) {
	defer c.wg.Done()
	rng := rand.New(rand.NewPCG(uint64(in.idx), 1))
	tick := time.NewTicker(c.w.writeEvery)
	defer tick.Stop()
	owned := (c.w.keys - in.idx + c.w.writers - 1) / c.w.writers
	next := 0
	for {
		select {
		case <-c.stop:
			return
		case <-tick.C:
		}
		var j int
		if c.w.sequential {
			j, next = next, (next+1)%owned
			if in.idx == 0 {
				c.writePos.Store(int64(next * c.w.writers))
			}
		} else {
			j = rng.IntN(owned)
		}
		k := in.idx + j*c.w.writers
		del := rng.Float64() < c.w.deleteShare
		in.mu.RLock()
		inc := in.cur.Load()
		if inc == nil {
			in.mu.RUnlock()
			continue
		}
		rec := c.db.write(k, in.idx, del)
		var err error
		if del {
			err = inc.cache.Delete(c.db.names[k])
		} else {
			err = inc.cache.Set(c.db.names[k], rec)
		}
		done := c.db.now()
		inc.recvMu.Lock()
		inc.sets = append(inc.sets, setDone{key: int32(k), ver: rec.Ver, at: done})
		inc.recvMu.Unlock()
		in.mu.RUnlock()
		if err != nil {
			c.t.Errorf("instance %d: write %s: %v", in.idx, c.db.names[k], err)
			return
		}
	}
}

// reader GetOrLoads random keys through its instance's current cache and
// records every answer. Each time its instance has a new incarnation it
// first warms the cache, as a service does at start-up, the moment New has
// returned: with workload.warmAll it loads every key (from a random
// offset); with warm > 0 (a joining instance, once) it loads warm keys in
// order from the position of instance 0's writer on, the keys about to be
// written.
func (c *cluster) reader(in *instance, warm int) {
	defer c.wg.Done()
	rng := rand.New(rand.NewPCG(rand.Uint64(), 2))
	log := make([]read, 0, 1<<16)
	loaders := make([]func(context.Context) (record, error), c.w.keys)
	for k := range loaders {
		loaders[k] = func(context.Context) (record, error) { return c.db.read(k), nil }
	}
	defer func() {
		c.mu.Lock()
		c.reads = append(c.reads, log)
		c.mu.Unlock()
	}()
	var seen *incarnation
	next, warming := 0, 0
	for !c.stopped() {
		if in.cur.Load() == nil {
			<-time.After(time.Millisecond) // between incarnations, or retired for good: poll
			continue
		}
		for range 256 {
			inc := in.cur.Load()
			if inc == nil {
				break
			}
			if inc != seen {
				seen = inc
				switch {
				case warm > 0:
					next, warming, warm = int(c.writePos.Load()), warm, 0
				case c.w.warmAll:
					next, warming = rng.IntN(c.w.keys), c.w.keys
				}
			}
			k := rng.IntN(c.w.keys)
			if warming > 0 {
				k, next = next%c.w.keys, next+1
				warming--
			}
			start := c.db.now()
			v, err := inc.cache.GetOrLoad(c.ctx, c.db.names[k], loaders[k])
			end := c.db.now()
			if err != nil {
				if errors.Is(err, presets.ErrClosed) {
					c.readErrors.Add(1)
					continue
				}
				c.t.Errorf("instance %d: GetOrLoad %s: %v", in.idx, c.db.names[k], err)
				return
			}
			log = append(log, read{start: start, end: end, key: uint32(k), ver: v.Ver, inst: int16(in.idx)})
		}
		runtime.Gosched()
	}
}

// partition drops traffic from the instances in from to those in to
// (both directions when both is set) until the returned heal is called;
// the cut is recorded for the checker.
func (c *cluster) partition(from, to []int, both bool) (heal func()) {
	rule := &blockRule{from: map[netip.AddrPort]bool{}, to: map[netip.AddrPort]bool{}, back: both}
	add := func(m map[netip.AddrPort]bool, idx []int) {
		for _, i := range idx {
			m[c.insts[i].cur.Load().conn.LocalAddr()] = true
		}
	}
	add(rule.from, from)
	add(rule.to, to)
	start := c.db.now()
	c.fab.setBlock(rule)
	return func() {
		c.fab.setBlock(nil)
		heal := c.db.now()
		c.mu.Lock()
		c.cuts = append(c.cuts, cut{from: from, to: to, start: start, heal: heal})
		if both {
			c.cuts = append(c.cuts, cut{from: to, to: from, start: start, heal: heal})
		}
		c.mu.Unlock()
	}
}

// pace runs the workload for d: the scenario's clock, not synchronisation.
func pace(d time.Duration) { <-time.After(d) }
