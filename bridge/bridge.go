package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/warpmesh/warpmesh/engine"
)

// ErrClosed is returned by a Bridge's methods after Close. It wraps
// net.ErrClosed.
var ErrClosed = fmt.Errorf("bridge: closed: %w", net.ErrClosed)

// Bridge is one mesh member that joins its mesh to others through NATS.
// Create it with New; all methods are safe for concurrent use.
type Bridge struct {
	cfg  *resolved
	node *engine.Node
	nc   *nats.Conn
	js   *jetStream // nil in core mode
	log  *slog.Logger
	ctr  counters
	lim  logLimiter

	exp exporter
	imp importer

	leader    atomic.Bool
	connected atomic.Bool
	// Leadership: the bridge of a mesh that imports is the oldest one
	// (lowest boot epoch, then id) among those whose presence beacons were
	// heard within StreamTimeout. The others are standbys: they track and
	// deduplicate everything but publish nothing, so one takes over with
	// warm state (and one flush for what it dropped) when the leader
	// falls silent.
	pmu        sync.Mutex
	peers      map[uint64]peer
	graceUntil time.Time // no takeover before (startup, reconnect)
	presSeq    uint64
	// lastCutFlush is when tick last flushed while disconnected (owned by
	// the timers goroutine).
	lastCutFlush time.Time
	presBuf      []byte

	flushReq chan struct{}
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	subs     []*nats.Subscription
	once     sync.Once
	closed   atomic.Bool
}

// peer is a sibling bridge of this mesh, from its presence beacons.
type peer struct {
	epoch uint64
	last  time.Time
}

// New validates opts, starts the bridge's mesh node, connects to NATS and
// starts exporting and importing. The NATS servers need not be reachable
// yet: the bridge retries, and counts as disconnected until then.
func New(opts Options) (*Bridge, error) {
	cfg, err := opts.resolve()
	if err != nil {
		return nil, err
	}
	b := &Bridge{cfg: cfg, log: cfg.Logger, peers: make(map[uint64]peer), flushReq: make(chan struct{}, 1)}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	mo := cfg.Mesh
	mo.NodeID = NewBridgeID()
	mo.OnInvalidate = b.exp.onInvalidate
	mo.OnEvent = b.onEvent
	now := time.Now()
	b.imp.init(b, now)
	b.exp.b = b
	b.graceUntil = now.Add(cfg.StreamTimeout)
	// The exporter must exist before the node can call it; its header
	// needs the node's id and epoch, so it is finished right after.
	b.exp.mu.Lock()
	b.exp.closing = true // drop what arrives before init
	b.exp.mu.Unlock()
	if b.node, err = engine.New(mo); err != nil {
		b.cancel()
		return nil, fmt.Errorf("bridge: start mesh node: %w", err)
	}
	b.exp.mu.Lock()
	b.exp.closing = false
	b.exp.mu.Unlock()

	if cfg.JetStream != nil {
		b.js = &jetStream{b: b, subs: make(map[string]*nats.Subscription)}
	}
	nopts := []nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(250 * time.Millisecond), nats.NoEcho(),
		nats.RetryOnFailedConnect(true), nats.Name("warpmesh-bridge " + cfg.Name)}
	nopts = append(nopts, cfg.NATSOptions...)
	nopts = append(nopts,
		nats.ConnectHandler(func(*nats.Conn) { b.onConnect(false) }),
		nats.ReconnectHandler(func(*nats.Conn) { b.onConnect(true) }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { b.onDisconnect(err) }),
		nats.ErrorHandler(b.onAsyncError))
	b.nc, err = nats.Connect(cfg.NATSURL, nopts...)
	if err != nil {
		b.node.Close()
		b.cancel()
		return nil, fmt.Errorf("bridge: connect to NATS: %w", err)
	}
	if b.nc.IsConnected() {
		b.connected.Store(true)
	}
	pub := b.publishCore
	if cfg.JetStream != nil {
		if err = b.js.start(); err != nil {
			b.nc.Close()
			b.node.Close()
			b.cancel()
			return nil, err
		}
		pub = b.js.publish
	} else {
		for _, s := range cfg.subs {
			sub, err := b.nc.Subscribe(s, func(m *nats.Msg) { b.imp.handle(m.Subject, m.Data) })
			if err == nil {
				err = sub.SetPendingLimits(-1, 256<<20)
			}
			if err != nil {
				b.nc.Close()
				b.node.Close()
				b.cancel()
				return nil, fmt.Errorf("bridge: subscribe %s: %w", s, err)
			}
			b.subs = append(b.subs, sub)
		}
	}
	psub, err := b.nc.Subscribe(cfg.presenceSubject, b.onPresence)
	if err != nil {
		b.nc.Close()
		b.node.Close()
		b.cancel()
		return nil, fmt.Errorf("bridge: subscribe %s: %w", cfg.presenceSubject, err)
	}
	b.subs = append(b.subs, psub)
	b.exp.mu.Lock()
	b.exp.init(b, b.node.ID(), b.node.Epoch(), pub)
	b.exp.mu.Unlock()
	b.wg.Add(3)
	go func() { defer b.wg.Done(); b.exp.run() }()
	go func() { defer b.wg.Done(); b.runTimers() }()
	go func() { defer b.wg.Done(); b.runFlusher() }()
	b.log.Info("warpmesh bridge started", "mesh", cfg.Name, "id", fmt.Sprintf("%016x", b.node.ID()),
		"nats", cfg.NATSURL, "jetstream", cfg.JetStream != nil, "subjects", cfg.subs)
	return b, nil
}

// Node returns the bridge's node in its mesh (for its address, members
// and engine stats). Do not Close it: Close the bridge.
func (b *Bridge) Node() *engine.Node { return b.node }

// Name returns this mesh's name on NATS.
func (b *Bridge) Name() string { return b.cfg.Name }

// Leader reports whether this bridge imports for its mesh.
func (b *Bridge) Leader() bool { return b.leader.Load() }

// Connected reports whether the NATS connection is up.
func (b *Bridge) Connected() bool { return b.connected.Load() }

// Stats returns a snapshot of the bridge's counters.
func (b *Bridge) Stats() Stats {
	var s Stats
	b.ctr.snapshot(&s)
	b.imp.snapshot(&s)
	s.Leader, s.Connected = b.leader.Load(), b.connected.Load()
	return s
}

// Close stops importing, closes the mesh node (which sends what it holds
// and leaves the mesh), sends the exporter's queued batches and a Bye, and
// closes the NATS connection. Close is idempotent; later calls return nil.
func (b *Bridge) Close() error {
	var err error
	b.once.Do(func() {
		b.closed.Store(true)
		for _, s := range b.subs {
			s.Unsubscribe() // the connection closes below regardless
		}
		b.leader.Store(false)
		if b.js != nil {
			b.js.stepDown() // unacknowledged batches go to the next importer
		}
		b.cancel()
		err = b.node.Close()
		b.exp.close()
		if b.js != nil {
			b.js.close()
		}
		if e := b.nc.Flush(); e != nil && err == nil && b.nc.IsConnected() {
			err = e
		}
		b.nc.Close()
		b.wg.Wait()
	})
	return err
}

// publishCore sends one batch on core NATS; nats.go copies it.
func (b *Bridge) publishCore(data []byte, _ uint64) error {
	return b.nc.Publish(b.cfg.invSubject, data)
}

// onEvent sees the node's events. A Gap means the bridge's node may have
// missed invalidations of its own mesh, which then never reach NATS: the
// next batch says so, and the far side flushes.
func (b *Bridge) onEvent(e engine.Event) {
	if e.Type == engine.EventGap && !IsBridgeID(e.Gap.Origin) {
		b.exp.flagLoss()
	}
}

func (b *Bridge) onConnect(reconnect bool) {
	b.connected.Store(true)
	now := time.Now()
	// Hear the siblings again before taking over; with JetStream, give the
	// remote exporters, reconnecting too, as long again before their
	// silence counts.
	grace := b.cfg.StreamTimeout
	if b.js != nil {
		grace *= 2
	}
	b.pmu.Lock()
	if g := now.Add(grace); g.After(b.graceUntil) {
		b.graceUntil = g
	}
	b.pmu.Unlock()
	if b.js != nil {
		b.js.reconnected()
		return
	}
	if reconnect {
		// Batches published while we were away are gone: one flush
		// covers them, and the streams resume without a flush each.
		b.imp.resync(now)
		b.flush(FlushReconnect)
	}
}

func (b *Bridge) onDisconnect(err error) {
	if b.closed.Load() {
		return
	}
	b.connected.Store(false)
	if b.lim.allow() {
		b.log.Warn("bridge: NATS connection lost", "err", err)
	}
	if b.js != nil {
		return // the durable consumers replay; publishes wait in the client
	}
	// What the server had not yet delivered when the link fell is lost,
	// both ways: flush here, flag it to the far side.
	b.exp.flagLoss()
	b.flush(FlushDisconnect)
}

func (b *Bridge) onAsyncError(_ *nats.Conn, sub *nats.Subscription, err error) {
	if errors.Is(err, nats.ErrSlowConsumer) {
		b.flush(FlushSlowConsumer)
	}
	if b.lim.allow() {
		b.log.Warn("bridge: NATS error", "err", err)
	}
}

// flush asks for one flush of this mesh, if this bridge is its importer.
// Requests made while one is queued are covered by it.
func (b *Bridge) flush(r FlushReason) {
	if !b.leader.Load() || b.closed.Load() {
		return
	}
	b.ctr.flushes[r].Add(1)
	select {
	case b.flushReq <- struct{}{}:
	default:
		b.ctr.coalesced.Add(1)
	}
}

// runFlusher performs queued flushes: Node.DeclareLoss makes every member
// of the mesh raise a Gap for the bridge's node, and presets flush.
func (b *Bridge) runFlusher() {
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-b.flushReq:
		}
		if err := b.node.DeclareLoss(); err != nil {
			return
		}
		b.ctr.declared.Add(1)
	}
}

// runTimers sends presence beacons, expires silent streams and siblings,
// and decides leadership, every KeepAlive/2.
func (b *Bridge) runTimers() {
	t := time.NewTicker(b.cfg.KeepAlive / 2)
	defer t.Stop()
	b.tick(time.Now())
	for {
		select {
		case <-b.ctx.Done():
			return
		case now := <-t.C:
			b.tick(now)
		}
	}
}

func (b *Bridge) tick(now time.Time) {
	if b.connected.Load() {
		b.sendPresence()
	}
	// With JetStream, a silence while this bridge is cut off is replayed
	// later: streams expire only while connected and past the grace.
	b.pmu.Lock()
	grace := now.Before(b.graceUntil)
	b.pmu.Unlock()
	if (b.js == nil || (b.connected.Load() && !grace)) && b.imp.expire(now) {
		b.flush(FlushStreamTimeout)
	}
	// Core mode (or JetStream with FlushWhileCutOff), cut off from NATS:
	// nothing of the other meshes can arrive, so values loaded since the
	// last flush may already be stale. Flushing every StreamTimeout bounds
	// that staleness by StreamTimeout (the caches act as pass-through)
	// until the link is back.
	if (b.js == nil || b.cfg.JetStream.FlushWhileCutOff) && !b.connected.Load() && now.Sub(b.lastCutFlush) >= b.cfg.StreamTimeout {
		b.lastCutFlush = now
		b.flush(FlushDisconnected)
	}
	b.elect(now)
}

// elect applies the leadership rule. A standby that becomes the importer
// flushes once: it dropped what it heard while standing by.
func (b *Bridge) elect(now time.Time) {
	if b.closed.Load() {
		return
	}
	b.pmu.Lock()
	defer b.pmu.Unlock()
	cut := now.Add(-b.cfg.StreamTimeout)
	best := true
	for id, p := range b.peers {
		if p.last.Before(cut) {
			delete(b.peers, id)
			continue
		}
		if older(p.epoch, id, b.node.Epoch(), b.node.ID()) {
			best = false
		}
	}
	switch {
	case !best && b.leader.Load():
		b.leader.Store(false)
		if b.js != nil {
			b.js.stepDown()
		}
		b.log.Info("bridge: standing by; an older bridge of this mesh imports")
	case best && !b.leader.Load() && !now.Before(b.graceUntil) && b.connected.Load():
		b.leader.Store(true)
		b.log.Info("bridge: importing for this mesh")
		if b.js != nil {
			// The mesh's durable consumers replay from where the last
			// importer acknowledged; the takeover flushes only when one
			// of them cannot (new, or its batches expired).
			b.imp.resync(now)
			b.js.lead()
			return
		}
		b.flush(FlushTakeover) // a standby dropped what it heard
	}
}

// older reports whether bridge (e1, id1) started before (e2, id2).
func older(e1, id1, e2, id2 uint64) bool { return e1 < e2 || (e1 == e2 && id1 < id2) }

func (b *Bridge) sendPresence() {
	b.pmu.Lock()
	b.presSeq++
	b.presBuf = AppendBatchHeader(b.presBuf[:0], &BatchHeader{
		Flags: FlagPresence, Bridge: b.node.ID(), Stream: b.node.Epoch(), Seq: b.presSeq, Mesh: []byte(b.cfg.Name),
	})
	err := b.nc.Publish(b.cfg.presenceSubject, b.presBuf)
	b.pmu.Unlock()
	if err != nil && b.lim.allow() {
		b.log.Warn("bridge: presence beacon failed", "err", err)
	}
}

// onPresence records a sibling bridge's beacon; an older sibling makes
// this bridge stand down at once.
func (b *Bridge) onPresence(m *nats.Msg) {
	h, _, err := ValidateBatch(m.Data)
	if err != nil {
		b.ctr.drops[dropReasonOf(err)].Add(1)
		return
	}
	if h.Flags&FlagPresence == 0 || string(h.Mesh) != b.cfg.Name || h.Bridge == b.node.ID() {
		b.ctr.drops[DropWrongMesh].Add(1)
		return
	}
	now := time.Now()
	b.pmu.Lock()
	if _, ok := b.peers[h.Bridge]; !ok && len(b.peers) >= b.cfg.MaxStreams {
		b.pmu.Unlock()
		b.ctr.drops[DropTooManyStreams].Add(1)
		return
	}
	b.peers[h.Bridge] = peer{epoch: h.Stream, last: now}
	b.pmu.Unlock()
	if b.leader.Load() && older(h.Stream, h.Bridge, b.node.Epoch(), b.node.ID()) {
		b.elect(now)
	}
}

// logLimiter lets at most one log line per second through on hot paths.
type logLimiter struct{ last atomic.Int64 }

func (l *logLimiter) allow() bool {
	now := time.Now().UnixNano()
	last := l.last.Load()
	return now-last >= int64(time.Second) && l.last.CompareAndSwap(last, now)
}
