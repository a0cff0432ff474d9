package memnet

import (
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"

	"github.com/warpmesh/warpmesh/engine"
	"github.com/warpmesh/warpmesh/sockopt"
)

var _ engine.Transport = (*Endpoint)(nil)

// Endpoint is one address on a Network; it implements engine.Transport.
// ReadBatch may be called from one goroutine at a time, WriteBatch from
// several.
type Endpoint struct {
	net  *Network
	addr netip.AddrPort
	ctr  counters

	txMu sync.Mutex // serialises senders: guards rng
	rng  *rand.Rand

	mu       sync.Mutex
	readable sync.Cond // queue became non-empty, resumed or closed
	resumed  sync.Cond // pause ended or closed
	closed   bool
	paused   bool
	waiting  bool // a reader waits on readable
	q        queue
}

// queue is a ring of datagram slots. It starts small and doubles up to the
// network's QueueLen as backlog demands; a slot's buffer (MTU bytes) is
// allocated once, the first time the slot is used, and then reused.
type queue struct {
	slots []slot
	head  int // oldest datagram
	n     int // datagrams queued
	limit int
	mtu   int
}

type slot struct {
	buf  []byte // cap mtu
	from netip.AddrPort
}

const initialQueueSlots = 16

func newEndpoint(n *Network, addr netip.AddrPort) *Endpoint {
	e := &Endpoint{net: n, addr: addr}
	// Per-endpoint stream: the network seed mixed with the address, so
	// every sender's decisions repeat across runs whatever the others do.
	e.rng = rand.New(rand.NewPCG(n.seed, addrHash(addr)))
	e.readable.L = &e.mu
	e.resumed.L = &e.mu
	e.q = queue{limit: n.cfg.QueueLen, mtu: n.cfg.MTU}
	return e
}

// addrHash is FNV-1a over the address and port: stable across processes,
// unlike maphash, so seeded runs repeat.
func addrHash(a netip.AddrPort) uint64 {
	h := uint64(14695981039346656037)
	ip := a.Addr().As16()
	for _, b := range ip {
		h = (h ^ uint64(b)) * 1099511628211
	}
	h = (h ^ uint64(a.Port()>>8)) * 1099511628211
	h = (h ^ uint64(a.Port()&0xff)) * 1099511628211
	return h
}

// LocalAddr returns the endpoint's address.
func (e *Endpoint) LocalAddr() netip.AddrPort { return e.addr }

// Pending returns how many datagrams wait in the endpoint's receive
// queue, unread (like SIOCINQ on a socket, but a count). The engine reads
// it to tell frames still queued here from frames lost.
func (e *Endpoint) Pending() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.q.n
}

// Stats returns the endpoint's counters.
func (e *Endpoint) Stats() Stats { return e.ctr.snapshot() }

// ReadBatch blocks until at least one datagram is queued (and the endpoint
// is not paused), then moves up to len(msgs) of them into the callers'
// buffers: msgs[i].Buf receives the bytes, truncated to len(Buf);
// msgs[i].N and msgs[i].Addr (the sender) are set. After Close it returns
// an error wrapping net.ErrClosed. Does not allocate.
func (e *Endpoint) ReadBatch(msgs []sockopt.Message) (int, error) {
	if len(msgs) == 0 {
		return 0, nil
	}
	e.mu.Lock()
	for (e.q.n == 0 || e.paused) && !e.closed {
		e.waiting = true
		e.readable.Wait()
	}
	e.waiting = false
	if e.closed {
		e.mu.Unlock()
		return 0, ErrClosed
	}
	k := 0
	for k < len(msgs) && e.q.n > 0 {
		s := &e.q.slots[e.q.head]
		m := &msgs[k]
		m.N = copy(m.Buf, s.buf)
		m.Addr = s.from
		m.SegSize = 0
		e.q.head++
		if e.q.head == len(e.q.slots) {
			e.q.head = 0
		}
		e.q.n--
		k++
	}
	e.mu.Unlock()
	e.ctr.read.Add(uint64(k))
	return k, nil
}

// WriteBatch sends msgs[i].Buf to msgs[i].Addr through the network's
// faults. Like UDP it succeeds for datagrams the network then loses; it
// fails only for a datagram longer than the MTU (ErrTooLarge, returning
// how many went before it) or after Close. While the endpoint is paused
// it blocks until Resume or Close. Does not allocate in steady state.
func (e *Endpoint) WriteBatch(msgs []sockopt.Message) (int, error) {
	e.mu.Lock()
	for e.paused && !e.closed {
		e.resumed.Wait()
	}
	closed := e.closed
	e.mu.Unlock()
	if closed {
		return 0, ErrClosed
	}
	n := e.net
	now := n.sched.clock()
	e.txMu.Lock()
	defer e.txMu.Unlock()
	n.mu.RLock()
	defer n.mu.RUnlock()
	if n.closed {
		return 0, ErrClosed
	}
	for i := range msgs {
		m := &msgs[i]
		if len(m.Buf) > n.cfg.MTU {
			e.ctr.drop(DropTooLarge)
			return i, ErrTooLarge
		}
		e.ctr.sent.Add(1)
		n.routeLocked(e, m.Buf, netip.AddrPortFrom(m.Addr.Addr().Unmap(), m.Addr.Port()), now)
	}
	return len(msgs), nil
}

// Pause stops the endpoint like a frozen process: ReadBatch returns
// nothing and WriteBatch blocks until Resume, while arrivals keep queueing
// (and are dropped once the queue is full).
func (e *Endpoint) Pause() {
	e.mu.Lock()
	e.paused = true
	e.mu.Unlock()
}

// Resume ends a Pause.
func (e *Endpoint) Resume() {
	e.mu.Lock()
	e.paused = false
	e.readable.Broadcast()
	e.resumed.Broadcast()
	e.mu.Unlock()
}

// Close removes the endpoint from the network, discards its queue and
// unblocks ReadBatch and WriteBatch, which then return ErrClosed (wrapping
// net.ErrClosed). Later calls return ErrClosed.
func (e *Endpoint) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return ErrClosed
	}
	e.closed = true
	e.q = queue{} // release the buffers
	e.readable.Broadcast()
	e.resumed.Broadcast()
	e.mu.Unlock()

	n := e.net
	n.mu.Lock()
	if n.endpoints[e.addr] == e {
		delete(n.endpoints, e.addr)
	}
	n.mu.Unlock()
	return nil
}

// enqueue copies b into the receive queue. It returns false when the
// endpoint is closed; a full queue drops b (counted here) and returns true.
func (e *Endpoint) enqueue(b []byte, from netip.AddrPort) bool {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return false
	}
	q := &e.q
	if q.n == len(q.slots) && !q.grow() {
		e.mu.Unlock()
		e.ctr.drop(DropQueueFull)
		return true
	}
	i := q.head + q.n
	if i >= len(q.slots) {
		i -= len(q.slots)
	}
	s := &q.slots[i]
	if s.buf == nil {
		s.buf = make([]byte, 0, q.mtu) // once per slot, while the queue grows
	}
	s.buf = append(s.buf[:0], b...)
	s.from = from
	q.n++
	if e.waiting && !e.paused {
		e.readable.Signal()
	}
	e.mu.Unlock()
	e.ctr.delivered.Add(1)
	return true
}

// grow doubles the ring up to its limit, keeping the queued datagrams in
// order. Reports false at the limit.
func (q *queue) grow() bool {
	if len(q.slots) >= q.limit {
		return false
	}
	size := min(max(2*len(q.slots), initialQueueSlots), q.limit)
	slots := make([]slot, size) // only while the backlog reaches a new high
	for i := 0; i < len(q.slots); i++ {
		j := q.head + i
		if j >= len(q.slots) {
			j -= len(q.slots)
		}
		slots[i] = q.slots[j]
	}
	q.slots, q.head = slots, 0
	return true
}

// clock returns nanoseconds on the network's monotonic clock.
func (s *scheduler) clock() int64 { return int64(time.Since(s.start)) }
