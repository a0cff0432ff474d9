package bench

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warpmesh/warpmesh/sockopt"
)

// BenchmarkLoopbackCeiling is the raw datagram rate loopback UDP gives one
// sender and one receiver goroutine, the ceiling every figure above runs
// against:
//
//	plain  one WriteToUDPAddrPort / ReadFromUDPAddrPort per datagram
//	batch  sendmmsg / recvmmsg of 64 (sockopt, GSO and GRO off)
//	gso    UDP_SEGMENT messages of 64 datagrams; the receiver reads single
//	       datagrams with recvmmsg (GRO off), so the kernel segments them
//
// pkts/s counts datagrams that arrived, from the first send to the last
// arrival; loss% is what the receive buffer dropped; ns/op is the sender's.
func BenchmarkLoopbackCeiling(b *testing.B) {
	for _, mode := range []string{"plain", "batch", "gso"} {
		for _, size := range []int{64, 1400} {
			b.Run(fmt.Sprintf("%s/size=%d", mode, size), func(b *testing.B) {
				ceiling(b, mode, size)
			})
		}
	}
}

func ceiling(b *testing.B, mode string, size int) {
	lo := netip.MustParseAddr("127.0.0.1")
	rx, err := sockopt.Listen(sockopt.Config{BindAddr: lo, RecvBuffer: 8 << 20, DisableGRO: true})
	if err != nil {
		b.Fatal(err)
	}
	dst := rx.LocalAddr()
	var got atomic.Uint64
	var last atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		msgs := make([]sockopt.Message, 64)
		for i := range msgs {
			msgs[i].Buf = make([]byte, 2048)
		}
		for {
			k, err := rx.ReadBatch(msgs)
			if err != nil {
				return
			}
			got.Add(uint64(k))
			last.Store(time.Now().UnixNano())
		}
	})
	send, closeTx := sender(b, mode, size, lo, dst)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	send(b.N)
	b.StopTimer()
	for prev, moved := got.Load(), time.Now(); got.Load() < uint64(b.N) && time.Since(moved) < 100*time.Millisecond; {
		time.Sleep(time.Millisecond) // polling for quiescence, not synchronising
		if g := got.Load(); g != prev {
			prev, moved = g, time.Now()
		}
	}
	closeTx()
	rx.Close()
	wg.Wait()
	g := got.Load()
	if g == 0 {
		b.Fatal("nothing arrived")
	}
	el := float64(last.Load()-start.UnixNano()) / 1e9
	b.ReportMetric(float64(g)/el, "pkts/s")
	b.ReportMetric(100*float64(uint64(b.N)-min(g, uint64(b.N)))/float64(b.N), "loss%")
}

// sender returns a function that sends n datagrams of size to dst the way
// mode says, and a closer.
func sender(b *testing.B, mode string, size int, lo netip.Addr, dst netip.AddrPort) (func(n int), func()) {
	payload := make([]byte, size)
	if mode == "plain" {
		tx, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(lo, 0)))
		if err != nil {
			b.Fatal(err)
		}
		return func(n int) {
			for range n {
				if _, err := tx.WriteToUDPAddrPort(payload, dst); err != nil {
					b.Fatal(err)
				}
			}
		}, func() { tx.Close() }
	}
	tx, err := sockopt.Listen(sockopt.Config{BindAddr: lo, SendBuffer: 8 << 20, DisableGSO: mode != "gso"})
	if err != nil {
		b.Fatal(err)
	}
	if mode == "gso" && !tx.GSO() {
		tx.Close()
		b.Skip("kernel offers no UDP GSO")
	}
	const perMsg = 64 // datagrams per GSO message
	msgs := make([]sockopt.Message, 64)
	var super []byte
	if mode == "gso" {
		super = make([]byte, perMsg*size)
	}
	return func(n int) {
		for n > 0 {
			k := 0
			for ; k < len(msgs) && n > 0; k++ {
				if mode == "gso" {
					c := min(n, perMsg)
					msgs[k] = sockopt.Message{Buf: super[:c*size], Addr: dst, SegSize: size}
					n -= c
				} else {
					msgs[k] = sockopt.Message{Buf: payload, Addr: dst}
					n--
				}
			}
			if _, err := tx.WriteBatch(msgs[:k]); err != nil && !errors.Is(err, net.ErrClosed) {
				b.Fatal(err)
			}
		}
	}, func() { tx.Close() }
}
