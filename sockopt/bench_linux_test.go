package sockopt

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The benchmarks move b.N datagrams of one size from a sender goroutine to
// a receiver goroutine over 127.0.0.1 and report what the receiver got:
//
//	plain      one WriteToUDPAddrPort / ReadFromUDPAddrPort per datagram
//	batch      sendmmsg / recvmmsg of 64 (GRO off)
//	gso        UDP_SEGMENT super-buffers of up to 64 datagrams, receiver
//	           recvmmsg with GRO off (the kernel segments on receive)
//	gso_gro_lo_memcopy
//	           GSO send, GRO receive. On lo a GSO super-packet is never
//	           split, so this measures memory copies, not a packet path:
//	           never quote it as a packet rate.
//
// pkts/s and MB/s count datagrams and payload bytes that arrived, over the
// time from the first send to the last arrival; loss% is what the
// receiver's buffer dropped because the sender outran it; ns/op is the
// sender's time per datagram.

const benchBuffer = 4 << 20

// benchSizes are the datagram sizes measured.
var benchSizes = []int{64, 512, 1400}

// benchSide is one half of a benchmark: send or receive until told to stop.
type benchSide struct {
	got, bytes atomic.Uint64
	last       atomic.Int64 // unix nanoseconds of the last datagram received
}

func (s *benchSide) arrived(pkts, n int) {
	s.got.Add(uint64(pkts))
	s.bytes.Add(uint64(n))
	s.last.Store(time.Now().UnixNano())
}

// runBench times send (which must send exactly b.N datagrams) against
// recv (which must call s.arrived and return when its socket is closed).
func runBench(b *testing.B, size int, send func(), recv func(s *benchSide), closeRecv func()) {
	b.ReportAllocs()
	var s benchSide
	var wg sync.WaitGroup
	wg.Go(func() { recv(&s) })
	b.ResetTimer()
	start := time.Now()
	send()
	b.StopTimer() // ns/op: the sender's time per datagram
	// Wait until everything arrived or nothing more arrives (the rest was
	// dropped by the receive buffer): no progress for 100ms once something
	// came, or for 2s before anything did.
	for prev, idle := uint64(0), time.Duration(0); ; {
		const tick = 10 * time.Millisecond
		time.Sleep(tick) // polling for quiescence, not synchronising
		got := s.got.Load()
		if got >= uint64(b.N) {
			break
		}
		if got != prev {
			prev, idle = got, 0
			continue
		}
		if idle += tick; (got > 0 && idle >= 100*time.Millisecond) || idle >= 2*time.Second {
			break
		}
	}
	closeRecv()
	wg.Wait()
	got := s.got.Load()
	if got == 0 {
		b.Fatal("nothing arrived")
	}
	elapsed := time.Duration(s.last.Load() - start.UnixNano()).Seconds()
	b.ReportMetric(float64(got)/elapsed, "pkts/s")
	b.ReportMetric(float64(s.bytes.Load())/elapsed/1e6, "MB/s")
	b.ReportMetric(100*float64(uint64(b.N)-min(got, uint64(b.N)))/float64(b.N), "loss%")
}

func BenchmarkPlain(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			rx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				b.Fatal(err)
			}
			tx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				b.Fatal(err)
			}
			defer tx.Close()
			if err := rx.SetReadBuffer(benchBuffer); err != nil {
				b.Fatal(err)
			}
			dst := rx.LocalAddr().(*net.UDPAddr).AddrPort()
			out := make([]byte, size)
			runBench(b, size, func() {
				for range b.N {
					if _, err := tx.WriteToUDPAddrPort(out, dst); err != nil {
						b.Error(err)
						return
					}
				}
			}, func(s *benchSide) {
				in := make([]byte, 2048)
				for {
					n, _, err := rx.ReadFromUDPAddrPort(in)
					if err != nil {
						return
					}
					s.arrived(1, n)
				}
			}, func() { _ = rx.Close() })
		})
	}
}

// benchConns opens a sender and a receiver for the batched benchmarks.
func benchConns(b *testing.B, gro bool) (tx, rx *Conn) {
	rx, err := Listen(Config{BindAddr: loopback, RecvBuffer: benchBuffer, DisableGRO: !gro})
	if err != nil {
		b.Fatal(err)
	}
	tx, err = Listen(Config{BindAddr: loopback, SendBuffer: benchBuffer})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = tx.Close() })
	if gro && !rx.GRO() {
		b.Skip("kernel without UDP GRO")
	}
	return tx, rx
}

// recvBatches is the receiver of the batched benchmarks.
func recvBatches(rx *Conn, bufSize int) func(s *benchSide) {
	return func(s *benchSide) {
		in := newMessages(rx.BatchSize(), bufSize)
		for {
			n, err := rx.ReadBatch(in)
			if err != nil {
				return
			}
			pkts, bytes := 0, 0
			for _, m := range in[:n] {
				pkts += datagrams(m.N, m.SegSize)
				bytes += m.N
			}
			s.arrived(pkts, bytes)
		}
	}
}

func BenchmarkBatch(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			tx, rx := benchConns(b, false)
			out := make([]Message, tx.BatchSize())
			for i := range out {
				out[i] = Message{Buf: make([]byte, size), Addr: rx.LocalAddr()}
			}
			runBench(b, size, func() {
				for sent := 0; sent < b.N; {
					k := min(len(out), b.N-sent)
					if _, err := tx.WriteBatch(out[:k]); err != nil {
						b.Error(err)
						return
					}
					sent += k
				}
			}, recvBatches(rx, 2048), func() { _ = rx.Close() })
		})
	}
}

func BenchmarkGSO(b *testing.B) {
	for _, gro := range []bool{false, true} {
		name := "gso"
		if gro {
			name = "gso_gro_lo_memcopy"
		}
		for _, size := range benchSizes {
			b.Run(fmt.Sprintf("%s/size=%d", name, size), func(b *testing.B) {
				tx, rx := benchConns(b, gro)
				if !tx.GSO() {
					b.Skip("kernel without UDP GSO")
				}
				segs := min(MaxGSOSegments, maxGSOPayload/size)
				out := make([]Message, 4) // up to 4×64 datagrams per sendmmsg
				for i := range out {
					out[i] = Message{Buf: make([]byte, segs*size), Addr: rx.LocalAddr(), SegSize: size}
				}
				runBench(b, size, func() {
					for sent := 0; sent < b.N; {
						k := 0
						for k < len(out) && sent < b.N {
							n := min(segs, b.N-sent)
							out[k].Buf = out[k].Buf[:n*size]
							sent += n
							k++
						}
						if _, err := tx.WriteBatch(out[:k]); err != nil {
							b.Error(err)
							return
						}
					}
				}, recvBatches(rx, GROBufferSize), func() { _ = rx.Close() })
			})
		}
	}
}

// BenchmarkSendOnly measures the sender alone: the receiver's socket filter
// drops every datagram in the kernel, so nothing is queued or read. On lo
// the sender's syscall still carries each datagram through the receive
// path up to that filter.
func BenchmarkSendOnly(b *testing.B) {
	for _, mode := range []string{"plain", "batch", "gso"} {
		for _, size := range benchSizes {
			b.Run(fmt.Sprintf("%s/size=%d", mode, size), func(b *testing.B) {
				b.ReportAllocs()
				tx, rx := benchConns(b, false)
				defer rx.Close()
				if err := rx.SetRandomDrop(1); err != nil {
					b.Fatal(err)
				}
				var send func(n int) int
				switch mode {
				case "plain":
					utx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
					if err != nil {
						b.Fatal(err)
					}
					defer utx.Close()
					out := make([]byte, size)
					send = func(int) int {
						if _, err := utx.WriteToUDPAddrPort(out, rx.LocalAddr()); err != nil {
							b.Fatal(err)
						}
						return 1
					}
				case "batch":
					out := make([]Message, tx.BatchSize())
					for i := range out {
						out[i] = Message{Buf: make([]byte, size), Addr: rx.LocalAddr()}
					}
					send = func(n int) int {
						k := min(len(out), n)
						if _, err := tx.WriteBatch(out[:k]); err != nil {
							b.Fatal(err)
						}
						return k
					}
				case "gso":
					if !tx.GSO() {
						b.Skip("kernel without UDP GSO")
					}
					segs := min(MaxGSOSegments, maxGSOPayload/size)
					out := []Message{{Buf: make([]byte, segs*size), Addr: rx.LocalAddr(), SegSize: size}}
					send = func(n int) int {
						k := min(segs, n)
						out[0].Buf = out[0].Buf[:k*size]
						if _, err := tx.WriteBatch(out); err != nil {
							b.Fatal(err)
						}
						return k
					}
				}
				b.ResetTimer()
				for sent := 0; sent < b.N; {
					sent += send(b.N - sent)
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pkts/s")
				b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds()/1e6, "MB/s")
			})
		}
	}
}
