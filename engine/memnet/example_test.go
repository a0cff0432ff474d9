package memnet_test

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/warpmesh/warpmesh/engine"
	"github.com/warpmesh/warpmesh/engine/memnet"
	"github.com/warpmesh/warpmesh/sockopt"
)

// Two endpoints exchange a datagram, then a partition cuts them apart.
func ExampleNew() {
	n := memnet.New(1)
	defer n.Close()
	a, _ := n.Listen(netip.MustParseAddrPort("10.0.0.1:7946"))
	b, _ := n.Listen(netip.MustParseAddrPort("10.0.0.2:7946"))

	a.WriteBatch([]sockopt.Message{{Buf: []byte("hello"), Addr: b.LocalAddr()}})
	in := []sockopt.Message{{Buf: make([]byte, 1500)}}
	k, _ := b.ReadBatch(in)
	fmt.Printf("%d datagram: %q from %v\n", k, in[0].Buf[:in[0].N], in[0].Addr)

	n.Partition([]netip.AddrPort{a.LocalAddr()}, []netip.AddrPort{b.LocalAddr()})
	a.WriteBatch([]sockopt.Message{{Buf: []byte("cut"), Addr: b.LocalAddr()}})
	fmt.Println("dropped by partition:", a.Stats().Drops[memnet.DropPartition])
	// Output:
	// 1 datagram: "hello" from 10.0.0.1:7946
	// dropped by partition: 1
}

// Links can lose, delay, reorder (jitter) and duplicate datagrams.
func ExampleNetwork_SetDefaultLink() {
	n := memnet.New(7)
	defer n.Close()
	n.SetDefaultLink(memnet.Link{Loss: 0.01, Delay: 2 * time.Millisecond, Jitter: time.Millisecond})
	a, _ := n.Listen(netip.MustParseAddrPort("10.0.0.1:7946"))
	b, _ := n.Listen(netip.MustParseAddrPort("10.0.0.2:7946"))
	n.SetLoss(a.LocalAddr(), b.LocalAddr(), 1) // this one direction loses everything
	a.WriteBatch([]sockopt.Message{{Buf: []byte("x"), Addr: b.LocalAddr()}})
	fmt.Println("lost:", a.Stats().Drops[memnet.DropLoss])
	// Output: lost: 1
}

// Engine nodes run on memnet endpoints through Options.Transport, finding
// each other through Peers.
func Example_engine() {
	n := memnet.New(1)
	defer n.Close()
	start := func(ip string, peers ...string) *engine.Node {
		ep, _ := n.Listen(netip.MustParseAddrPort(ip + ":7946"))
		node, err := engine.New(engine.Options{
			Transport:     ep,
			AdvertiseAddr: ep.LocalAddr().String(),
			Peers:         peers,
			Heartbeat:     20 * time.Millisecond,
		})
		if err != nil {
			panic(err)
		}
		return node
	}
	a := start("10.0.0.1")
	defer a.Close()
	b := start("10.0.0.2", "10.0.0.1:7946")
	defer b.Close()
	got := make(chan string, 1)
	b.OnInvalidate(func(inv engine.Invalidation) { got <- string(inv.Key) })
	for len(a.Members()) == 0 { // wait for a to learn b
		time.Sleep(time.Millisecond)
	}
	a.Invalidate("user:42")
	fmt.Println("b applied", <-got)
	// Output: b applied user:42
}
