package engine

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/warpmesh/warpmesh/codec"
	"github.com/warpmesh/warpmesh/sockopt"
)

// gateTransport delivers queued datagrams to the node and blocks every
// write until the gate opens: a network that has stopped draining.
type gateTransport struct {
	in     chan []byte
	gate   chan struct{}
	closed chan struct{}
	once   sync.Once
	from   netip.AddrPort
}

func (t *gateTransport) ReadBatch(msgs []sockopt.Message) (int, error) {
	select {
	case b := <-t.in:
		msgs[0].N = copy(msgs[0].Buf, b)
		msgs[0].Addr = t.from
		return 1, nil
	case <-t.closed:
		return 0, ErrClosed
	}
}

func (t *gateTransport) WriteBatch(msgs []sockopt.Message) (int, error) {
	select {
	case <-t.gate:
		return len(msgs), nil
	case <-t.closed:
		return 0, ErrClosed
	}
}

func (t *gateTransport) LocalAddr() netip.AddrPort { return netip.MustParseAddrPort("127.0.0.1:1") }

func (t *gateTransport) Close() error {
	t.once.Do(func() { close(t.closed) })
	return nil
}

func TestBackpressure(t *testing.T) {
	tr := &gateTransport{in: make(chan []byte, 1), gate: make(chan struct{}), closed: make(chan struct{}),
		from: netip.MustParseAddrPort("127.0.0.1:2")}
	o := quietOptions(unicastOptions(7946))
	o.Transport, o.BindAddr, o.AdvertiseAddr = tr, "", "127.0.0.1:1"
	o.PublishRing = 4096
	n := startNode(t, o)
	var opened sync.Once
	open := func() { opened.Do(func() { close(tr.gate) }) }
	t.Cleanup(open) // runs before the node's Close: its flush must not block
	// A member to send to, so the sender loop has somewhere to write.
	var alive []byte
	{
		h := codec.Header{Type: codec.TypeAlive, HopLimit: 1, Cluster: n.cfg.cluster, Origin: 0x77, Epoch: 1, Packet: 1,
			PayloadLen: uint16(codec.AlivePayloadLen(0))}
		alive = codec.AppendHeader(nil, &h)
		alive = codec.AppendAlive(alive, &codec.Alive{Incarnation: 1, Addr: tr.from})
	}
	tr.in <- alive
	// The gate holds the node's challenge: validate the member directly.
	waitFor(t, 5*time.Second, "member heard", func() bool { return n.Stats().MembersUnvalidated == 1 })
	n.members.validated(0x77, 1, tr.from, tr.from, 1, time.Now())
	waitFor(t, 5*time.Second, "member", func() bool { return aliveCount(n) == 1 })

	// The network stops draining: the sender blocks in its first write and
	// the ring fills. TryPublish says so; nothing is dropped silently.
	key := []byte("a-key-of-some-length-0000000000")
	if err := n.TryPublish(key, false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the sender to block in its write", func() bool { return n.Stats().SendBatches == 1 })
	var full bool
	for i := 0; i < 10000 && !full; i++ {
		err := n.TryPublish(key, false)
		switch {
		case errors.Is(err, ErrBackpressure):
			full = true
		case err != nil:
			t.Fatal(err)
		}
	}
	if !full {
		t.Fatal("the publish ring never reported backpressure")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := n.Publish(ctx, key, false); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Publish on a full ring: %v, want the context's deadline", err)
	}
	accepted := n.Stats().Published
	open() // the network drains again
	waitFor(t, 5*time.Second, "ring to drain", func() bool { return n.TryPublish(key, false) == nil })
	if err := n.Invalidate("after"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "every accepted invalidation sent", func() bool {
		s := n.Stats()
		return s.RecordsSent == s.Published && s.Published >= accepted+2
	})
}
