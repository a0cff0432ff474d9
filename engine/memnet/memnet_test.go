package memnet_test

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/warpmesh/warpmesh/engine/memnet"
	"github.com/warpmesh/warpmesh/sockopt"
)

func addr(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func listen(t testing.TB, n *memnet.Network, a string) *memnet.Endpoint {
	t.Helper()
	e, err := n.Listen(addr(a))
	if err != nil {
		t.Fatalf("Listen(%s): %v", a, err)
	}
	return e
}

func newNet(t testing.TB, seed int64) *memnet.Network {
	t.Helper()
	n := memnet.New(seed)
	t.Cleanup(func() { n.Close() })
	return n
}

func readBufs(k, size int) []sockopt.Message {
	msgs := make([]sockopt.Message, k)
	for i := range msgs {
		msgs[i].Buf = make([]byte, size)
	}
	return msgs
}

// send writes one datagram per payload from e to each destination.
func send(t testing.TB, e *memnet.Endpoint, to netip.AddrPort, payloads ...string) {
	t.Helper()
	msgs := make([]sockopt.Message, len(payloads))
	for i, p := range payloads {
		msgs[i] = sockopt.Message{Buf: []byte(p), Addr: to}
	}
	if k, err := e.WriteBatch(msgs); err != nil || k != len(msgs) {
		t.Fatalf("WriteBatch = %d, %v", k, err)
	}
}

// drain reads everything queued at e without blocking past what Stats
// says has arrived.
func drain(t testing.TB, e *memnet.Endpoint) []string {
	t.Helper()
	var out []string
	msgs := readBufs(64, 2048)
	for {
		s := e.Stats()
		if s.Read == s.Delivered {
			return out
		}
		k, err := e.ReadBatch(msgs)
		if err != nil {
			t.Fatalf("ReadBatch: %v", err)
		}
		for _, m := range msgs[:k] {
			out = append(out, string(m.Buf[:m.N]))
		}
	}
}

func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(time.Millisecond) // polling interval, not synchronisation
	}
}

func TestDelivery(t *testing.T) {
	n := newNet(t, 1)
	a := listen(t, n, "10.0.0.1:7946")
	b := listen(t, n, "10.0.0.2:7946")
	send(t, a, b.LocalAddr(), "one", "two", "three-is-long")
	msgs := readBufs(8, 5) // truncates the third
	k, err := b.ReadBatch(msgs)
	if err != nil || k != 3 {
		t.Fatalf("ReadBatch = %d, %v; want 3", k, err)
	}
	want := []string{"one", "two", "three"}
	for i, m := range msgs[:k] {
		if got := string(m.Buf[:m.N]); got != want[i] || m.Addr != a.LocalAddr() {
			t.Errorf("msg %d = %q from %v, want %q from %v", i, got, m.Addr, want[i], a.LocalAddr())
		}
	}
	s := b.Stats()
	if s.Delivered != 3 || s.Read != 3 || a.Stats().Sent != 3 {
		t.Errorf("stats: receiver %+v, sender %+v", s, a.Stats())
	}
	// Unknown destination: accepted like UDP, counted as no route.
	send(t, a, addr("10.0.0.9:1"), "lost")
	if d := a.Stats().Drops[memnet.DropNoRoute]; d != 1 {
		t.Errorf("no-route drops = %d, want 1", d)
	}
}

func TestListen(t *testing.T) {
	n := newNet(t, 1)
	listen(t, n, "10.0.0.1:1")
	if _, err := n.Listen(addr("10.0.0.1:1")); !errors.Is(err, memnet.ErrAddrInUse) {
		t.Errorf("duplicate Listen: %v, want ErrAddrInUse", err)
	}
	for _, bad := range []netip.AddrPort{{}, addr("0.0.0.0:1"), addr("239.0.0.1:1")} {
		if _, err := n.Listen(bad); !errors.Is(err, memnet.ErrInvalidAddr) {
			t.Errorf("Listen(%v): %v, want ErrInvalidAddr", bad, err)
		}
	}
	e1 := listen(t, n, "10.0.0.2:0")
	e2 := listen(t, n, "10.0.0.2:0")
	if e1.LocalAddr().Port() == 0 || e1.LocalAddr() == e2.LocalAddr() {
		t.Errorf("port 0 gave %v and %v", e1.LocalAddr(), e2.LocalAddr())
	}
	mapped := listen(t, n, "[::ffff:10.0.0.3]:5")
	if mapped.LocalAddr() != addr("10.0.0.3:5") {
		t.Errorf("mapped address kept: %v", mapped.LocalAddr())
	}
	e1.Close()
	if _, err := n.Listen(e1.LocalAddr()); err != nil {
		t.Errorf("Listen after Close: %v", err)
	}
}

func TestConfigValidation(t *testing.T) {
	for _, c := range []memnet.Config{{MTU: -1}, {MTU: 70000}, {QueueLen: -1}, {MaxInFlight: -5}} {
		if _, err := memnet.NewWithConfig(1, c); !errors.Is(err, memnet.ErrInvalidConfig) {
			t.Errorf("NewWithConfig(%+v): %v, want ErrInvalidConfig", c, err)
		}
	}
	n := newNet(t, 1)
	for _, l := range []memnet.Link{{Loss: -0.1}, {Loss: 1.5}, {Loss: math.NaN()}, {Duplicate: 2}, {Delay: -1}, {Jitter: -1}} {
		if err := n.SetDefaultLink(l); !errors.Is(err, memnet.ErrInvalidConfig) {
			t.Errorf("SetDefaultLink(%+v): %v, want ErrInvalidConfig", l, err)
		}
	}
	if err := n.SetLoss(addr("10.0.0.1:1"), addr("10.0.0.2:1"), 2); !errors.Is(err, memnet.ErrInvalidConfig) {
		t.Errorf("SetLoss(2): %v", err)
	}
}

func TestTooLarge(t *testing.T) {
	n, err := memnet.NewWithConfig(1, memnet.Config{MTU: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	a := listen(t, n, "10.0.0.1:1")
	b := listen(t, n, "10.0.0.2:1")
	msgs := []sockopt.Message{{Buf: make([]byte, 100), Addr: b.LocalAddr()}, {Buf: make([]byte, 101), Addr: b.LocalAddr()}}
	k, err := a.WriteBatch(msgs)
	if k != 1 || !errors.Is(err, memnet.ErrTooLarge) {
		t.Fatalf("WriteBatch = %d, %v; want 1, ErrTooLarge", k, err)
	}
	if s := a.Stats(); s.Sent != 1 || s.Drops[memnet.DropTooLarge] != 1 {
		t.Errorf("stats %+v", s)
	}
}

func TestLossRate(t *testing.T) {
	const total = 20000
	for _, tc := range []struct {
		name   string
		p      float64
		global bool
	}{{"link 30%", 0.3, false}, {"global 10%", 0.1, true}, {"none", 0, false}, {"all", 1, false}} {
		t.Run(tc.name, func(t *testing.T) {
			n := newNet(t, 42)
			a := listen(t, n, "10.0.0.1:1")
			b := listen(t, n, "10.0.0.2:1")
			c := listen(t, n, "10.0.0.3:1")
			var err error
			if tc.global {
				err = n.SetDefaultLink(memnet.Link{Loss: tc.p})
			} else {
				err = n.SetLoss(a.LocalAddr(), b.LocalAddr(), tc.p)
			}
			if err != nil {
				t.Fatal(err)
			}
			got := 0
			msgs := readBufs(64, 16)
			batch := make([]sockopt.Message, 64)
			for i := range batch {
				batch[i] = sockopt.Message{Buf: []byte("x"), Addr: b.LocalAddr()}
			}
			for sent := 0; sent < total; sent += len(batch) {
				if _, err := a.WriteBatch(batch); err != nil {
					t.Fatal(err)
				}
				for s := b.Stats(); s.Read < s.Delivered; s = b.Stats() {
					k, _ := b.ReadBatch(msgs)
					got += k
				}
			}
			sent := int(a.Stats().Sent)
			rate := 1 - float64(got)/float64(sent)
			// 20000 Bernoulli trials: 4 standard deviations is < 0.014.
			if math.Abs(rate-tc.p) > 0.015 {
				t.Errorf("loss %.4f, want %.2f", rate, tc.p)
			}
			if d := a.Stats().Drops[memnet.DropLoss]; int(d)+got != sent {
				t.Errorf("drops %d + received %d != sent %d", d, got, sent)
			}
			// The reverse and other links are untouched by a per-link loss.
			if !tc.global {
				send(t, b, c.LocalAddr(), "ok")
				if len(drain(t, c)) != 1 {
					t.Errorf("loss leaked onto b→c")
				}
			}
			t.Logf("asked %.2f, measured %.4f over %d datagrams", tc.p, rate, sent)
		})
	}
}

func TestDeterministicSeed(t *testing.T) {
	pattern := func(seed int64) string {
		n := memnet.New(seed)
		defer n.Close()
		a := listen(t, n, "10.0.0.1:1")
		b := listen(t, n, "10.0.0.2:1")
		if err := n.SetDefaultLink(memnet.Link{Loss: 0.5}); err != nil {
			t.Fatal(err)
		}
		var p []byte
		for i := range 200 {
			before := b.Stats().Delivered
			send(t, a, b.LocalAddr(), fmt.Sprint(i))
			if b.Stats().Delivered > before {
				p = append(p, '1')
			} else {
				p = append(p, '0')
			}
		}
		return string(p)
	}
	if p1, p2 := pattern(7), pattern(7); p1 != p2 {
		t.Errorf("same seed, different loss patterns:\n%s\n%s", p1, p2)
	}
	if p1, p3 := pattern(7), pattern(8); p1 == p3 {
		t.Errorf("different seeds gave the same 200-datagram pattern")
	}
}

func TestPartition(t *testing.T) {
	n := newNet(t, 1)
	a := listen(t, n, "10.0.0.1:1")
	b := listen(t, n, "10.0.0.2:1")
	c := listen(t, n, "10.0.0.3:1")
	d := listen(t, n, "10.0.0.4:1")
	n.Partition([]netip.AddrPort{a.LocalAddr(), b.LocalAddr()}, []netip.AddrPort{c.LocalAddr(), d.LocalAddr()})
	send(t, a, c.LocalAddr(), "x")
	send(t, d, b.LocalAddr(), "x")
	send(t, a, b.LocalAddr(), "same side")
	send(t, c, d.LocalAddr(), "same side")
	if got := len(drain(t, c)) + len(drain(t, b)); got != 1 {
		t.Errorf("b and c got %d datagrams, want only a→b's", got)
	}
	if got := drain(t, d); len(got) != 1 {
		t.Errorf("d got %v", got)
	}
	if a.Stats().Drops[memnet.DropPartition] != 1 || d.Stats().Drops[memnet.DropPartition] != 1 {
		t.Errorf("partition drops: a %+v d %+v", a.Stats(), d.Stats())
	}
	n.Heal()
	send(t, a, c.LocalAddr(), "healed")
	if got := drain(t, c); len(got) != 1 || got[0] != "healed" {
		t.Errorf("after Heal c got %v", got)
	}
}

func TestPartitionDropsInFlight(t *testing.T) {
	n := newNet(t, 1)
	a := listen(t, n, "10.0.0.1:1")
	b := listen(t, n, "10.0.0.2:1")
	if err := n.SetDefaultLink(memnet.Link{Delay: 30 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	send(t, a, b.LocalAddr(), "cut in flight")
	n.Partition([]netip.AddrPort{a.LocalAddr()}, []netip.AddrPort{b.LocalAddr()})
	waitFor(t, 5*time.Second, "scheduler to drain", func() bool { return n.InFlight() == 0 })
	if s := a.Stats(); s.Drops[memnet.DropPartition] != 1 || b.Stats().Delivered != 0 {
		t.Errorf("in-flight datagram crossed a partition: a %+v b %+v", s, b.Stats())
	}
}

func TestDelayKeepsOrder(t *testing.T) {
	n := newNet(t, 1)
	a := listen(t, n, "10.0.0.1:1")
	b := listen(t, n, "10.0.0.2:1")
	const delay = 20 * time.Millisecond
	if err := n.SetLink(a.LocalAddr(), b.LocalAddr(), memnet.Link{Delay: delay}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var want []string
	for i := range 100 {
		want = append(want, fmt.Sprint(i))
	}
	send(t, a, b.LocalAddr(), want...)
	msgs := readBufs(8, 16)
	var got []string
	for len(got) < len(want) {
		k, err := b.ReadBatch(msgs) // blocks until the scheduler delivers
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 0 && time.Since(start) < delay {
			t.Fatalf("first datagram after %v, before the %v delay", time.Since(start), delay)
		}
		for _, m := range msgs[:k] {
			got = append(got, string(m.Buf[:m.N]))
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("fixed delay reordered: %v", got)
	}
}

func TestJitterReorders(t *testing.T) {
	n := newNet(t, 3)
	a := listen(t, n, "10.0.0.1:1")
	b := listen(t, n, "10.0.0.2:1")
	if err := n.SetDefaultLink(memnet.Link{Delay: time.Millisecond, Jitter: 10 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	const total = 500
	var payloads []string
	for i := range total {
		payloads = append(payloads, fmt.Sprintf("%04d", i))
	}
	send(t, a, b.LocalAddr(), payloads...)
	msgs := readBufs(64, 16)
	seen := make(map[string]bool)
	inversions, last := 0, ""
	for len(seen) < total {
		k, err := b.ReadBatch(msgs)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs[:k] {
			p := string(m.Buf[:m.N])
			if p < last {
				inversions++
			}
			last = p
			seen[p] = true
		}
	}
	if inversions == 0 {
		t.Errorf("10ms jitter over %d datagrams reordered nothing", total)
	}
	// Delivered is counted just after a datagram is queued, so the reader
	// can get ahead of it: wait for the count, then check nothing more.
	waitFor(t, 5*time.Second, "Delivered to count every datagram", func() bool { return b.Stats().Delivered >= total })
	if s := b.Stats(); s.Delivered != total {
		t.Errorf("delivered %d, want %d", s.Delivered, total)
	}
	t.Logf("%d of %d datagrams arrived after a later one", inversions, total)
}

func TestDuplicate(t *testing.T) {
	n := newNet(t, 1)
	a := listen(t, n, "10.0.0.1:1")
	b := listen(t, n, "10.0.0.2:1")
	if err := n.SetDefaultLink(memnet.Link{Duplicate: 1}); err != nil {
		t.Fatal(err)
	}
	send(t, a, b.LocalAddr(), "x", "y")
	if got := drain(t, b); fmt.Sprint(got) != "[x x y y]" {
		t.Errorf("got %v, want each twice", got)
	}
	if s := a.Stats(); s.Duplicated != 2 || s.Sent != 2 {
		t.Errorf("sender stats %+v", s)
	}
}

func TestQueueFull(t *testing.T) {
	n, err := memnet.NewWithConfig(1, memnet.Config{QueueLen: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	a := listen(t, n, "10.0.0.1:1")
	b := listen(t, n, "10.0.0.2:1")
	var p []string
	for i := range 20 {
		p = append(p, fmt.Sprint(i))
	}
	send(t, a, b.LocalAddr(), p...)
	got := drain(t, b)
	if fmt.Sprint(got) != "[0 1 2 3 4 5 6 7]" {
		t.Errorf("got %v, want the first 8", got)
	}
	if d := b.Stats().Drops[memnet.DropQueueFull]; d != 12 {
		t.Errorf("queue-full drops at receiver = %d, want 12", d)
	}
	send(t, a, b.LocalAddr(), "room again")
	if got := drain(t, b); len(got) != 1 {
		t.Errorf("after draining got %v", got)
	}
}

func TestCloseUnblocks(t *testing.T) {
	n := newNet(t, 1)
	a := listen(t, n, "10.0.0.1:1")
	b := listen(t, n, "10.0.0.2:1")
	errc := make(chan error, 1)
	go func() {
		_, err := a.ReadBatch(readBufs(1, 16))
		errc <- err
	}()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("ReadBatch after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not unblock ReadBatch")
	}
	if _, err := a.WriteBatch([]sockopt.Message{{Buf: []byte("x"), Addr: b.LocalAddr()}}); !errors.Is(err, net.ErrClosed) {
		t.Errorf("WriteBatch after Close: %v", err)
	}
	if err := a.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close: %v", err)
	}
	send(t, b, a.LocalAddr(), "to closed")
	if d := b.Stats().Drops[memnet.DropNoRoute]; d != 1 {
		t.Errorf("datagram to a closed endpoint: no-route drops %d", d)
	}
	n.Close()
	if _, err := b.ReadBatch(readBufs(1, 16)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("ReadBatch after Network.Close: %v", err)
	}
	if _, err := n.Listen(addr("10.0.0.5:1")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Listen after Network.Close: %v", err)
	}
}

func TestPause(t *testing.T) {
	n := newNet(t, 1)
	a := listen(t, n, "10.0.0.1:1")
	b := listen(t, n, "10.0.0.2:1")
	b.Pause()
	read := make(chan int, 1)
	go func() {
		k, _ := b.ReadBatch(readBufs(4, 16))
		read <- k
	}()
	send(t, a, b.LocalAddr(), "queued while paused")
	if s := b.Stats(); s.Delivered != 1 {
		t.Fatalf("not queued: %+v", s)
	}
	wrote := make(chan error, 1)
	go func() {
		_, err := b.WriteBatch([]sockopt.Message{{Buf: []byte("from paused"), Addr: a.LocalAddr()}})
		wrote <- err
	}()
	select { // an absence check, bounded: nothing may happen while paused
	case k := <-read:
		t.Fatalf("paused endpoint read %d datagrams", k)
	case <-wrote:
		t.Fatal("paused endpoint wrote")
	case <-time.After(20 * time.Millisecond):
	}
	b.Resume()
	if k := <-read; k != 1 {
		t.Errorf("after Resume read %d, want 1", k)
	}
	if err := <-wrote; err != nil {
		t.Errorf("write after Resume: %v", err)
	}
	if got := drain(t, a); len(got) != 1 {
		t.Errorf("a got %v", got)
	}
	// Close also releases a writer blocked by a pause.
	b.Pause()
	go func() {
		_, err := b.WriteBatch([]sockopt.Message{{Buf: []byte("x"), Addr: a.LocalAddr()}})
		wrote <- err
	}()
	b.Close()
	if err := <-wrote; !errors.Is(err, net.ErrClosed) {
		t.Errorf("paused writer after Close: %v", err)
	}
}

func TestConcurrentWriters(t *testing.T) {
	n := newNet(t, 1)
	if err := n.SetDefaultLink(memnet.Link{Loss: 0.05, Duplicate: 0.05, Jitter: time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	sink := listen(t, n, "10.0.0.100:1")
	const writers, per = 4, 2000
	var wg sync.WaitGroup
	eps := make([]*memnet.Endpoint, writers)
	for w := range writers {
		eps[w] = listen(t, n, fmt.Sprintf("10.0.0.%d:1", w+1))
	}
	for w := range writers {
		for g := range 2 { // two goroutines per endpoint: WriteBatch is concurrent-safe
			wg.Add(1)
			go func() {
				defer wg.Done()
				batch := make([]sockopt.Message, 10)
				for i := range batch {
					batch[i] = sockopt.Message{Buf: []byte{byte(w), byte(g)}, Addr: sink.LocalAddr()}
				}
				for range per / 10 / 2 {
					if _, err := eps[w].WriteBatch(batch); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
	}
	var read uint64
	done := make(chan struct{})
	go func() {
		defer close(done)
		msgs := readBufs(32, 16)
		for {
			k, err := sink.ReadBatch(msgs)
			if err != nil {
				return
			}
			read += uint64(k)
		}
	}()
	wg.Wait()
	waitFor(t, 5*time.Second, "in-flight to drain", func() bool { return n.InFlight() == 0 })
	waitFor(t, 5*time.Second, "reader to catch up", func() bool { s := sink.Stats(); return s.Read == s.Delivered })
	sink.Close()
	<-done
	total := n.Stats()
	if total.Sent != writers*per {
		t.Errorf("sent %d, want %d", total.Sent, writers*per)
	}
	// Every datagram (and duplicate) is either delivered or dropped.
	if total.Sent+total.Duplicated != total.Delivered+total.Dropped() {
		t.Errorf("accounting: sent %d + dup %d != delivered %d + dropped %d",
			total.Sent, total.Duplicated, total.Delivered, total.Dropped())
	}
	if read != total.Delivered {
		t.Errorf("read %d, delivered %d", read, total.Delivered)
	}
}
