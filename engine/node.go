package engine

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warpmesh/warpmesh/codec"
	"github.com/warpmesh/warpmesh/ringbuf"
	"github.com/warpmesh/warpmesh/sockopt"
)

// ErrClosed is returned by a Node's methods after Close. It wraps
// net.ErrClosed.
var ErrClosed = fmt.Errorf("engine: node closed: %w", net.ErrClosed)

// Invalidation is one applied invalidation as a handler sees it.
type Invalidation struct {
	// Key is a view into the received frame, valid only during the handler
	// call; copy it to keep it.
	Key []byte
	// Prefix is true when every key starting with Key is invalidated.
	Prefix bool
	// Origin is the id of the node that published it.
	Origin uint64
	// Epoch is the origin's boot epoch and Seq the sequence number of the
	// origin's frame that carried it (Gap events name missed sequences by
	// origin, epoch and range).
	Epoch, Seq uint64
}

// Handler receives applied invalidations on the node's receive goroutine.
// It must not block for long and must not retain inv.Key.
type Handler func(inv Invalidation)

// Node is one member of a mesh. Create it with New; all methods are safe
// for concurrent use.
type Node struct {
	cfg    *config
	id     uint64
	epoch  uint64
	inc    atomic.Uint64 // incarnation
	log    *slog.Logger
	uni    Transport
	mcast  Transport // nil without a separate group socket
	uniRaw *sockopt.Conn
	mcRaw  *sockopt.Conn
	group  netip.AddrPort // invalid without multicast

	pub      *ringbuf.Records
	members  *membership
	events   *eventQueue
	handlers atomic.Pointer[[]*Handler]
	hmu      sync.Mutex // serialises handler list updates
	ctr      counters
	packet   atomic.Uint64 // packet number source (nonces, replay window)
	hwm      atomic.Uint64 // highest data sequence published
	ready    atomic.Bool   // see Ready
	readyCh  chan struct{} // closed when ready
	joins    joinTable     // from which seq each member is in our fan-out

	ctx       context.Context
	cancel    context.CancelFunc
	closeOnce sync.Once
	closed    atomic.Bool
	aborted   atomic.Bool // Abort: drop instead of sending
	senderWG  sync.WaitGroup
	tickWG    sync.WaitGroup // the heartbeat, probe and timer loops (Close waits for them before its last LEAVE)
	wg        sync.WaitGroup
	stopEv    chan struct{}

	hb      heartbeater
	seedRes seedResolver
	val     validator
	tx      sender
	rx      receiver
	timers  timers
	flow    flowState
	retrans *retransmitRing
	seal    *sealer // nil without a keyring
	lim     logLimiter
}

// New validates opts, opens the sockets and starts the node: it begins
// heartbeating at once and is ready to publish when New returns. It is
// coherent with the mesh (Ready) a little later, once every member has
// told it from which sequence it is in that member's fan-out.
func New(opts Options) (*Node, error) {
	cfg, err := opts.resolve()
	if err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, id: cfg.NodeID, log: cfg.Logger, stopEv: make(chan struct{}), readyCh: make(chan struct{})}
	for n.id == 0 {
		n.id = randUint64()
	}
	n.epoch = uint64(time.Now().UnixNano())
	n.inc.Store(1)
	n.packet.Store(0)
	n.pub, err = ringbuf.NewRecords(cfg.PublishRing)
	if err != nil {
		return nil, optErr("PublishRing", cfg.PublishRing, err.Error())
	}
	n.events = newEventQueue()
	n.members = newMembership(n.id, cfg, n.events)
	empty := []*Handler{}
	n.handlers.Store(&empty)

	if cfg.OnInvalidate != nil {
		n.OnInvalidate(cfg.OnInvalidate)
	}
	if cfg.OnEvent != nil {
		n.OnEvent(cfg.OnEvent)
	}
	if cfg.Transport != nil {
		n.uni = cfg.Transport
	} else {
		uni, mc, err := openTransports(cfg)
		if err != nil {
			return nil, err
		}
		n.uni, n.uniRaw = uni, uni
		if cfg.Port == AnyPort || cfg.advertise.Port() == 0 {
			bound := uni.LocalAddr().Port()
			cfg.Port = int(bound)
			if cfg.advertise.Port() == 0 {
				cfg.advertise = netip.AddrPortFrom(cfg.advertise.Addr(), bound)
			}
		}
		if mc != nil {
			n.mcast, n.mcRaw = mc, mc
		}
		if cfg.group.IsValid() {
			n.group = netip.AddrPortFrom(cfg.group, uint16(cfg.groupPort))
		}
	}
	if err := n.initLoops(); err != nil {
		n.uni.Close()
		if n.mcast != nil {
			n.mcast.Close()
		}
		return nil, err
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.wg.Add(1)
	go func() { defer n.wg.Done(); n.events.run(n.stopEv) }()
	n.senderWG.Add(1)
	go n.tx.run()
	n.rx.start()
	if n.seedRes.needsLookups() {
		n.wg.Add(1)
		go func() { defer n.wg.Done(); n.seedRes.run(n.ctx) }()
	}
	n.wg.Add(2)
	n.tickWG.Add(2)
	go func() { defer n.tickWG.Done(); n.hb.run() }()
	go func() { defer n.tickWG.Done(); n.timers.run() }()
	n.timers.kick() // readiness checks start at once
	n.log.Debug("warpmesh node started", "id", fmt.Sprintf("%016x", n.id),
		"addr", cfg.advertise, "group", n.group, "interface", cfg.Interface, "cluster", cfg.Cluster)
	return n, nil
}

func (n *Node) initLoops() error {
	n.retrans = newRetransmitRing(n.cfg.RetransmitBuffer, n.cfg.MaxFrameSize)
	if n.cfg.Keyring != nil {
		n.seal = &sealer{ring: n.cfg.Keyring, id: n.id, epoch: n.epoch}
	}
	n.timers.init(n)
	n.flow.init()
	n.joins.init()
	if err := n.tx.init(n); err != nil {
		return err
	}
	if err := n.rx.init(n); err != nil {
		return err
	}
	n.hb.init(n)
	n.seedRes.init(n.cfg, []netip.AddrPort{n.cfg.advertise, n.uni.LocalAddr()}, func(msg string, args ...any) {
		if n.lim.allow() {
			n.log.Warn(msg, args...)
		}
	})
	n.val.init(n)
	return nil
}

func randUint64() uint64 {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("engine: crypto/rand failed: " + err.Error()) // never happens on supported platforms
	}
	return binary.LittleEndian.Uint64(b[:])
}

// ID returns the node's id.
func (n *Node) ID() uint64 { return n.id }

// Epoch returns the node's boot epoch.
func (n *Node) Epoch() uint64 { return n.epoch }

// Addr returns the address the node advertises to others.
func (n *Node) Addr() netip.AddrPort { return n.cfg.advertise }

// LocalAddr returns the bound unicast address.
func (n *Node) LocalAddr() netip.AddrPort { return n.uni.LocalAddr() }

// Cluster returns the mesh's name.
func (n *Node) Cluster() string { return n.cfg.Cluster }

// OnInvalidate registers h to receive every invalidation applied from other
// nodes (and this node's own with Options.EchoLocal). Handlers run on the
// receive goroutine, in registration order. The returned function
// unregisters h; after it returns, h is not called again.
func (n *Node) OnInvalidate(h Handler) (unregister func()) {
	slot := &h // identity of this registration
	n.updateHandlers(func(hs []*Handler) []*Handler { return append(hs, slot) })
	return func() {
		n.updateHandlers(func(hs []*Handler) []*Handler {
			out := make([]*Handler, 0, len(hs))
			for _, x := range hs {
				if x != slot {
					out = append(out, x)
				}
			}
			return out
		})
		// A batch in progress may still hold the old list; taking the
		// receive lock waits for it to finish.
		n.rx.barrier()
	}
}

func (n *Node) updateHandlers(fn func([]*Handler) []*Handler) {
	n.hmu.Lock()
	defer n.hmu.Unlock()
	hs := fn(append([]*Handler(nil), *n.handlers.Load()...))
	n.handlers.Store(&hs)
}

// OnEvent registers fn to receive membership and Gap events, in order, on
// a goroutine of their own. The returned function unregisters it.
func (n *Node) OnEvent(fn func(Event)) (unregister func()) { return n.events.subscribe(fn) }

// Members returns a snapshot of the other members, sorted by id.
func (n *Node) Members() []Member { return n.members.snapshot() }

// Stats returns a snapshot of the node's counters.
func (n *Node) Stats() Stats {
	var s Stats
	n.ctr.snapshot(&s)
	n.members.count(&s)
	s.Ready = n.ready.Load()
	if n.uniRaw != nil {
		s.RecvBuffer, s.SendBuffer = n.uniRaw.RecvBufferSize(), n.uniRaw.SendBufferSize()
		cs := n.uniRaw.Stats()
		s.WriteSyscalls, s.ReadSyscalls = cs.WriteCalls, cs.ReadCalls
		if n.mcRaw != nil {
			ms := n.mcRaw.Stats()
			s.WriteSyscalls += ms.WriteCalls
			s.ReadSyscalls += ms.ReadCalls
		}
	}
	return s
}

// Close leaves the mesh gracefully: pending invalidations are sent, a leave
// goes to every member, then the node stops and waits for its goroutines.
// Close is idempotent; later calls return nil.
func (n *Node) Close() error { return n.shutdown(true) }

// Abort stops the node at once, like a crash: pending invalidations are
// dropped and no leave is sent, so the other members detect the failure by
// silence. It exists for failure-detection tests and demos. Like Close, it
// is idempotent and waits for the node's goroutines.
func (n *Node) Abort() error { return n.shutdown(false) }

func (n *Node) shutdown(graceful bool) error {
	var err error
	n.closeOnce.Do(func() {
		n.closed.Store(true)
		if !graceful {
			n.aborted.Store(true)
		}
		n.pub.Close()
		n.senderWG.Wait()
		n.cancel()
		if graceful {
			// The LEAVE is this node's last control frame: a member takes a
			// LEAVE only if it is newer than every packet it has had from
			// us, and a frame the timer loops or the receive worker numbered
			// after it could be written before it. With the loops stopped
			// and the worker held, nothing follows it.
			n.tickWG.Wait()
			n.rx.mu.Lock()
			n.hb.sendLeave()
			n.rx.mu.Unlock()
		}
		err = n.uni.Close()
		if n.mcast != nil {
			if e := n.mcast.Close(); err == nil {
				err = e
			}
		}
		n.rx.stop()
		close(n.stopEv)
		n.wg.Wait()
	})
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

func (n *Node) apply(key []byte, prefix bool, origin, epoch, seq uint64) {
	inv := Invalidation{Key: key, Prefix: prefix, Origin: origin, Epoch: epoch, Seq: seq}
	for _, h := range *n.handlers.Load() {
		(*h)(inv)
	}
}

// controlHeader starts the header of a control frame. Seq carries this
// node's data high-water mark, so every control frame announces it.
func (n *Node) controlHeader(t codec.FrameType) codec.Header {
	h := codec.Header{
		Type:     t,
		HopLimit: 1,
		Cluster:  n.cfg.cluster,
		Origin:   n.id,
		Epoch:    n.epoch,
		Seq:      n.hwm.Load(),
		Packet:   n.packet.Add(1),
	}
	if n.sealing() {
		h.Flags |= codec.FlagAuth
	}
	return h
}

// sealing reports whether outgoing frames are sealed.
func (n *Node) sealing() bool { return n.seal != nil && n.cfg.Auth != AuthSendPlaintext }

// sealFrame seals frame when its header asks for it. Does not allocate.
// sc is the calling goroutine's scratch.
func (n *Node) sealFrame(frame []byte, h *codec.Header, sc *sealScratch) []byte {
	if h.Flags&codec.FlagAuth == 0 {
		return frame
	}
	return n.seal.seal(frame, h.Packet, sc)
}

// logLimiter lets at most one log line per interval through on hot paths.
type logLimiter struct{ last atomic.Int64 }

func (l *logLimiter) allow() bool {
	now := time.Now().UnixNano()
	last := l.last.Load()
	return now-last >= int64(time.Second) && l.last.CompareAndSwap(last, now)
}
