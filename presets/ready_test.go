package presets

import (
	"context"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warpmesh/warpmesh/codec"
	"github.com/warpmesh/warpmesh/engine"
	"github.com/warpmesh/warpmesh/sockopt"
)

// silentPeer is a transport on which one member heartbeats once and
// answers address validation, but never a JOIN ask, so the node cannot
// become ready: it never learns from which invalidation on it is in that
// member's fan-out.
type silentPeer struct {
	alive  chan []byte
	closed chan struct{}
	once   sync.Once
	packet atomic.Uint64
}

func newSilentPeer(cluster string) *silentPeer {
	from := netip.MustParseAddrPort("127.0.0.1:2")
	h := codec.Header{Type: codec.TypeAlive, HopLimit: 1, Cluster: codec.ClusterHash(cluster), Origin: 0x51, Epoch: 1,
		Packet: 1, PayloadLen: uint16(codec.AlivePayloadLen(0))}
	b := codec.AppendHeader(nil, &h)
	b = codec.AppendAlive(b, &codec.Alive{Incarnation: 1, Addr: from})
	p := &silentPeer{alive: make(chan []byte, 4), closed: make(chan struct{})}
	p.alive <- b
	return p
}

// WriteBatch swallows everything but answers CHALLENGEs (on its reader's
// channel), as the member would.
func (p *silentPeer) WriteBatch(msgs []sockopt.Message) (int, error) {
	for _, m := range msgs {
		h, _, err := codec.ParseHeader(m.Buf)
		if err != nil || h.Type != codec.TypeChallenge {
			continue
		}
		rh := codec.Header{Type: codec.TypeResponse, HopLimit: 1, Cluster: h.Cluster, Origin: 0x51, Epoch: 1,
			Packet: 100 + p.packet.Add(1), PayloadLen: h.PayloadLen}
		resp := append(codec.AppendHeader(nil, &rh), m.Buf[codec.HeaderLen:codec.HeaderLen+int(h.PayloadLen)]...)
		select {
		case p.alive <- resp:
		default:
		}
	}
	return len(msgs), nil
}

func (p *silentPeer) ReadBatch(msgs []sockopt.Message) (int, error) {
	select {
	case b := <-p.alive:
		msgs[0].N = copy(msgs[0].Buf, b)
		msgs[0].Addr = netip.MustParseAddrPort("127.0.0.1:2")
		return 1, nil
	case <-p.closed:
		return 0, engine.ErrClosed
	}
}

func (p *silentPeer) LocalAddr() netip.AddrPort { return netip.MustParseAddrPort("127.0.0.1:1") }
func (p *silentPeer) Close() error              { p.once.Do(func() { close(p.closed) }); return nil }

// TestNotReadyStoresNothing: while the node is not ready, GetOrLoad passes
// through to the loader every time and Set stores nothing (both counted);
// once it is ready, loads are stored again.
func TestNotReadyStoresNothing(t *testing.T) {
	o := loopback(7946)
	o.Transport, o.BindAddr, o.AdvertiseAddr = newSilentPeer(o.Cluster), "", "127.0.0.1:1"
	o.Heartbeat, o.SuspectAfter, o.DeadAfter = 20*time.Millisecond, time.Hour, 2*time.Hour
	c, err := NewMeshEventual[string](o)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitFor(t, 5*time.Second, "the silent member", func() bool { return aliveCount(c.Node()) == 1 })
	if c.Node().Ready() {
		t.Fatal("ready although a live member never answered")
	}
	loads := 0
	load := func(context.Context) (string, error) { loads++; return "v", nil }
	for range 3 {
		if v, err := c.GetOrLoad(context.Background(), "k", load); err != nil || v != "v" {
			t.Fatalf("GetOrLoad: %q, %v", v, err)
		}
	}
	if err := c.Set("s", "x"); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Get("s"); ok {
		t.Fatal("Set stored a value while not ready")
	}
	st := c.Stats()
	if loads != 3 || st.NotReadyLoads != 3 || st.NotReadySets != 1 || c.Len() != 0 {
		t.Fatalf("loads %d, NotReadyLoads %d, NotReadySets %d, Len %d: want 3, 3, 1, 0",
			loads, st.NotReadyLoads, st.NotReadySets, c.Len())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := c.WaitReady(ctx); err == nil {
		t.Fatal("WaitReady returned without readiness")
	}
}

// TestReadyStoresAgain: on a mesh of one the node is ready after the
// discovery grace, and from then on loads are stored.
func TestReadyStoresAgain(t *testing.T) {
	c := newLocal[string](t)
	loads := 0
	load := func(context.Context) (string, error) { loads++; return "v", nil }
	for range 3 {
		if _, err := c.GetOrLoad(context.Background(), "k", load); err != nil {
			t.Fatal(err)
		}
	}
	if loads != 1 || c.Stats().NotReadyLoads != 0 {
		t.Fatalf("loads %d, NotReadyLoads %d after ready: want 1, 0", loads, c.Stats().NotReadyLoads)
	}
}
