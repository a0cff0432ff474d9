package sockopt_test

import (
	"fmt"
	"log"
	"net/netip"
	"time"

	"github.com/warpmesh/warpmesh/sockopt"
)

// Two sockets on 127.0.0.1: one writes a batch of three datagrams in one
// call, the other reads them into preallocated buffers.
func ExampleListen() {
	loopback := netip.MustParseAddr("127.0.0.1")
	rx, err := sockopt.Listen(sockopt.Config{BindAddr: loopback, DisableGRO: true})
	if err != nil {
		log.Fatal(err)
	}
	defer rx.Close()
	tx, err := sockopt.Listen(sockopt.Config{BindAddr: loopback})
	if err != nil {
		log.Fatal(err)
	}
	defer tx.Close()

	out := []sockopt.Message{
		{Buf: []byte("alpha"), Addr: rx.LocalAddr()},
		{Buf: []byte("beta"), Addr: rx.LocalAddr()},
		{Buf: []byte("gamma"), Addr: rx.LocalAddr()},
	}
	if _, err := tx.WriteBatch(out); err != nil {
		log.Fatal(err)
	}

	in := make([]sockopt.Message, rx.BatchSize())
	for i := range in {
		in[i].Buf = make([]byte, 1500) // allocated once, reused for every batch
	}
	for got := 0; got < len(out); {
		n, err := rx.ReadBatch(in)
		if err != nil {
			log.Fatal(err)
		}
		for _, m := range in[:n] {
			if m.Addr != tx.LocalAddr() {
				continue // not from our sender
			}
			fmt.Printf("%s from %v\n", m.Buf[:m.N], m.Addr.Addr())
			got++
		}
	}
	// Output:
	// alpha from 127.0.0.1
	// beta from 127.0.0.1
	// gamma from 127.0.0.1
}

// A message with SegSize set carries several equal-size datagrams: one GSO
// syscall where the kernel offers UDP_SEGMENT, separate datagrams otherwise.
// A receiver with GRO on may get them back in one Message; Segments walks
// them either way.
func ExampleMessage_Segments() {
	loopback := netip.MustParseAddr("127.0.0.1")
	rx, err := sockopt.Listen(sockopt.Config{BindAddr: loopback})
	if err != nil {
		log.Fatal(err)
	}
	defer rx.Close()
	tx, err := sockopt.Listen(sockopt.Config{BindAddr: loopback})
	if err != nil {
		log.Fatal(err)
	}
	defer tx.Close()

	frames := []byte("one-two-thr")
	if _, err := tx.WriteBatch([]sockopt.Message{{Buf: frames, Addr: rx.LocalAddr(), SegSize: 4}}); err != nil {
		log.Fatal(err)
	}
	in := make([]sockopt.Message, rx.BatchSize())
	for i := range in {
		in[i].Buf = make([]byte, sockopt.GROBufferSize)
	}
	for got := 0; got < 3; {
		n, err := rx.ReadBatch(in)
		if err != nil {
			log.Fatal(err)
		}
		for i := range in[:n] {
			if in[i].Addr != tx.LocalAddr() {
				continue // not from our sender
			}
			in[i].Segments(func(d []byte) {
				fmt.Printf("%s\n", d)
				got++
			})
		}
	}
	// Output:
	// one-
	// two-
	// thr
}

// SetRandomDrop makes the kernel drop a fraction of arriving datagrams,
// which loss-repair tests use.
func ExampleConn_SetRandomDrop() {
	c, err := sockopt.Listen(sockopt.Config{BindAddr: netip.MustParseAddr("127.0.0.1")})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if err := c.SetRandomDrop(0.1); err != nil { // drop about 10%
		log.Fatal(err)
	}
	fmt.Println("dropping about 10% of arriving datagrams")
	if err := c.SetRandomDrop(0); err != nil { // detach
		log.Fatal(err)
	}
	fmt.Println("filter detached")
	// Output:
	// dropping about 10% of arriving datagrams
	// filter detached
}

// Multicast stays on the named interface: set MulticastInterface before
// sending, and join the group on the receiving socket.
func ExampleConn_JoinGroup() {
	group := netip.MustParseAddr("239.255.77.78")
	rx, err := sockopt.Listen(sockopt.Config{DisableGRO: true}) // 0.0.0.0, ephemeral port
	if err != nil {
		log.Fatal(err)
	}
	defer rx.Close()
	if err := rx.JoinGroup(group, "lo"); err != nil {
		log.Fatal(err)
	}
	tx, err := sockopt.Listen(sockopt.Config{
		BindAddr:           netip.MustParseAddr("127.0.0.1"),
		MulticastInterface: "lo",
		MulticastLoop:      true,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer tx.Close()
	dst := netip.AddrPortFrom(group, rx.LocalAddr().Port())
	if _, err := tx.WriteBatch([]sockopt.Message{{Buf: []byte("hello, group"), Addr: dst}}); err != nil {
		log.Fatal(err)
	}
	in := []sockopt.Message{{Buf: make([]byte, 1500)}}
	rx.SetReadDeadline(time.Now().Add(5 * time.Second)) // no multicast on lo: fail, do not hang
	if _, err := rx.ReadBatch(in); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s\n", in[0].Buf[:in[0].N])
	// Output: hello, group
}
