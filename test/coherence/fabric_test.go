package coherence

import (
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/warpmesh/warpmesh/codec"
	"github.com/warpmesh/warpmesh/engine"
	"github.com/warpmesh/warpmesh/sockopt"
)

// fabric is the network between the instances: real UDP sockets on
// 127.0.0.1, with faults injected where each node writes. Random loss
// drops any datagram with a probability; a block drops every datagram
// from one set of addresses to another. Dropping on the sending side
// covers both directions of a partition and the inbound-only variant,
// because every node of the test writes through the fabric.
type fabric struct {
	loss    atomic.Uint64 // drop probability × 2^32
	block   atomic.Pointer[blockRule]
	dropped atomic.Uint64 // datagrams dropped by loss or a block
}

// blockRule drops datagrams from any address in from to any in to, and,
// when back is set, from any in to to any in from.
type blockRule struct {
	from, to map[netip.AddrPort]bool
	back     bool
}

func (f *fabric) setLoss(p float64) { f.loss.Store(uint64(p * (1 << 32))) }

// setBlock installs a block (nil heals).
func (f *fabric) setBlock(b *blockRule) { f.block.Store(b) }

func (f *fabric) drops(src, dst netip.AddrPort) bool {
	if b := f.block.Load(); b != nil && (b.from[src] && b.to[dst] || b.back && b.to[src] && b.from[dst]) {
		return true
	}
	p := f.loss.Load()
	return p != 0 && uint64(rand.Uint32()) < p
}

// listen opens a socket on 127.0.0.1 (port 0: any) wrapped by the fabric.
func (f *fabric) listen(port int) (*faultyConn, error) {
	c, err := sockopt.Listen(sockopt.Config{
		BindAddr:   netip.AddrFrom4([4]byte{127, 0, 0, 1}),
		Port:       port,
		RecvBuffer: 1 << 20,
		SendBuffer: 1 << 20,
		BatchSize:  64,
		DisableGRO: true,
	})
	if err != nil {
		return nil, err
	}
	return &faultyConn{c: c, f: f, local: c.LocalAddr()}, nil
}

// faultyConn is an engine.Transport over a real socket that drops what
// the fabric says to drop on the way out. It also records the highest
// DATA sequence it has written, so a test can tell when a node's last
// invalidation has left before killing it.
type faultyConn struct {
	c       *sockopt.Conn
	f       *fabric
	local   netip.AddrPort
	mu      sync.Mutex
	out     []sockopt.Message
	dataSeq atomic.Uint64
	// sends, when set, is told of every frame written (to explain stale
	// reads): its header and payload, to whom, and whether the fabric
	// dropped it.
	sends func(h *codec.Header, payload []byte, to netip.AddrPort, dropped bool)
}

var _ engine.Transport = (*faultyConn)(nil)

func (t *faultyConn) ReadBatch(msgs []sockopt.Message) (int, error) { return t.c.ReadBatch(msgs) }

// WriteBatch sends the messages the fabric lets through and reports every
// message as handled: a dropped datagram is lost on the wire, as far as
// the node can tell.
func (t *faultyConn) WriteBatch(msgs []sockopt.Message) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := t.out[:0]
	for _, m := range msgs {
		h, _, err := codec.ParseHeader(m.Buf)
		data := err == nil && h.Type == codec.TypeData
		if data && h.Flags&codec.FlagRetransmit == 0 && h.Seq > t.dataSeq.Load() {
			t.dataSeq.Store(h.Seq)
		}
		drop := t.f.drops(t.local, m.Addr)
		if err == nil && t.sends != nil && codec.HeaderLen+int(h.PayloadLen) <= len(m.Buf) {
			t.sends(&h, m.Buf[codec.HeaderLen:codec.HeaderLen+int(h.PayloadLen)], m.Addr, drop)
		}
		if drop {
			t.f.dropped.Add(1)
			continue
		}
		out = append(out, m)
	}
	t.out = out[:0]
	for len(out) > 0 {
		n, err := t.c.WriteBatch(out)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return 0, err
			}
			n++ // the kernel refused one datagram: it is lost, go on
		}
		out = out[min(n, len(out)):]
	}
	return len(msgs), nil
}

func (t *faultyConn) LocalAddr() netip.AddrPort { return t.local }

func (t *faultyConn) Close() error { return t.c.Close() }
