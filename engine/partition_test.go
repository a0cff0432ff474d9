package engine

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warpmesh/warpmesh/sockopt"
)

// faultTransport wraps a real loopback socket: it can drop every datagram
// arriving from one address (a one-way partition) and stop reading
// altogether (a paused process: the kernel buffer fills and overflows).
type faultTransport struct {
	*sockopt.Conn
	mu      sync.Mutex
	blocked netip.AddrPort // inbound datagrams from here are dropped
	paused  chan struct{}  // non-nil: ReadBatch waits until it is closed
	dropped atomic.Uint64
}

func newFaultTransport(t *testing.T) *faultTransport {
	t.Helper()
	c, err := sockopt.Listen(sockopt.Config{
		BindAddr: netip.MustParseAddr("127.0.0.1"), Port: 0, BatchSize: 64,
		RecvBuffer: 1 << 18, SendBuffer: 1 << 20, DisableGRO: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &faultTransport{Conn: c}
}

func (f *faultTransport) ReadBatch(msgs []sockopt.Message) (int, error) {
	for {
		f.mu.Lock()
		gate := f.paused
		f.mu.Unlock()
		if gate != nil {
			<-gate
		}
		n, err := f.Conn.ReadBatch(msgs)
		if err != nil {
			return n, err
		}
		f.mu.Lock()
		blocked := f.blocked
		f.mu.Unlock()
		if !blocked.IsValid() {
			return n, nil
		}
		k := 0
		for i := 0; i < n; i++ {
			if msgs[i].Addr == blocked {
				f.dropped.Add(1)
				continue
			}
			msgs[i], msgs[k] = msgs[k], msgs[i] // buffers stay the reader's; only slots move
			k++
		}
		if k > 0 {
			return k, nil
		}
	}
}

func (f *faultTransport) block(a netip.AddrPort) { f.mu.Lock(); f.blocked = a; f.mu.Unlock() }

func (f *faultTransport) pause() {
	f.mu.Lock()
	f.paused = make(chan struct{})
	f.mu.Unlock()
}

func (f *faultTransport) resume() {
	f.mu.Lock()
	if f.paused != nil {
		close(f.paused)
		f.paused = nil
	}
	f.mu.Unlock()
}

func faultNode(t *testing.T, tune func(*Options), seeds ...netip.AddrPort) (*Node, *faultTransport, *gapCounter) {
	t.Helper()
	tr := newFaultTransport(t)
	o := unicastOptions(0)
	if tune != nil {
		tune(&o)
	}
	o.Port = AnyPort
	o.Transport, o.BindAddr, o.AdvertiseAddr = tr, "", tr.LocalAddr().String()
	o.Peers = nil
	for _, s := range seeds {
		o.Peers = append(o.Peers, s.String())
	}
	var gaps gapCounter
	o.OnEvent = gaps.on
	n := startNode(t, o)
	return n, tr, &gaps
}

// TestInboundPartitionRepaired: the subscriber hears nothing from the
// publisher long enough to declare it dead, while the publisher hears the
// subscriber and keeps sending. On heal, the frames the publisher still
// holds are repaired (NACKed first), not given up as origin_dead.
func TestInboundPartitionRepaired(t *testing.T) {
	a, _, _ := faultNode(t, nil)
	b, btr, bgaps := faultNode(t, nil, a.Addr())
	waitFor(t, 5*time.Second, "mesh ready", func() bool {
		return aliveCount(a) == 1 && aliveCount(b) == 1 && a.Ready() && b.Ready()
	})
	lb := newKeyLog(b)
	btr.block(a.Addr())
	waitFor(t, 5*time.Second, "b declares a dead", func() bool { return b.Stats().MembersDead == 1 })
	sent0 := a.Stats().FramesSent
	dropped0 := btr.dropped.Load()
	const keys = 2000
	for i := 0; i < keys; i++ {
		if err := a.Publish(context.Background(), []byte(fmt.Sprintf("p:%d", i)), false); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "a sent everything", func() bool { return a.Stats().RecordsSent == keys })
	// Heal only once b has read (and dropped) all a sent meanwhile: a
	// loaded reader would otherwise read it from the socket after the heal.
	// b is a's only member.
	waitFor(t, 5*time.Second, "b dropped a's frames", func() bool {
		return btr.dropped.Load()-dropped0 >= a.Stats().FramesSent-sent0
	})
	btr.block(netip.AddrPort{})
	waitFor(t, 10*time.Second, "every key repaired at b", func() bool { return lb.distinct() == keys })
	s := b.Stats()
	if ev, _, _ := bgaps.snapshot(); ev != 0 || s.GapsGivenUp[GapOriginDead] != 0 {
		t.Fatalf("%d Gap events (%d origin_dead) after an inbound-only partition", ev, s.GapsGivenUp[GapOriginDead])
	}
	if s.NacksSent == 0 || s.RetransmitsReceived == 0 {
		t.Fatalf("NacksSent %d RetransmitsReceived %d: want a repair", s.NacksSent, s.RetransmitsReceived)
	}
	checkRepairCounters(t, "b", s)
}

// TestPauseCountersAddUp: a receiver that stops reading while the origin
// publishes fast overflows its socket buffer; on resume it repairs what
// the origin still holds and gives up the rest, and the counters add up
// (every given-up sequence was detected) with few, coalesced Gap events.
func TestPauseCountersAddUp(t *testing.T) {
	// No flow control and a small retransmit ring: the origin outruns the
	// paused receiver, and much of what it lost is no longer held.
	a, _, _ := faultNode(t, func(o *Options) { o.FlowWindow, o.RetransmitBuffer = -1, 256<<10 })
	b, btr, bgaps := faultNode(t, nil, a.Addr())
	waitFor(t, 5*time.Second, "mesh ready", func() bool {
		return aliveCount(a) == 1 && aliveCount(b) == 1 && a.Ready() && b.Ready()
	})
	btr.pause()
	const keys = 200_000
	key := make([]byte, 0, 32)
	for i := 0; i < keys; i++ {
		key = fmt.Appendf(key[:0], "pause:%d", i)
		if err := a.Publish(context.Background(), key, false); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "a sent everything", func() bool { return a.Stats().RecordsSent == keys })
	btr.resume()
	waitFor(t, 20*time.Second, "every sequence of a accounted for at b", func() bool {
		s := b.Stats()
		return s.GapsDetected > 0 && s.GapsDetected == s.GapsRepaired+s.FramesLost+s.GapsNotOwed &&
			s.DataFrames+s.FramesLost >= a.Stats().SendBatches // a sent at least one frame per flush
	})
	s := b.Stats()
	// Gap events reach the handler asynchronously (the event queue): wait
	// until those raised so far cover what the counters call lost.
	waitFor(t, 5*time.Second, "Gap events covering FramesLost", func() bool {
		_, m, _ := bgaps.snapshot()
		return m >= s.FramesLost
	})
	ev, missing, _ := bgaps.snapshot()
	t.Logf("pause: detected %d repaired %d lost %d in %d Gap events (%v); NACKs %d, retransmits %d",
		s.GapsDetected, s.GapsRepaired, s.FramesLost, ev, s.GapsGivenUp, s.NacksSent, s.RetransmitsReceived)
	if missing != s.FramesLost {
		t.Fatalf("Gap events cover %d frames, FramesLost %d", missing, s.FramesLost)
	}
	if s.FramesLost == 0 {
		t.Fatal("nothing lost: the pause did not overflow the receiver")
	}
	if ev > 20 {
		t.Fatalf("%d Gap events for one pause: not coalesced", ev)
	}
}

// TestDeafOriginFlagged: an inbound-only partition on the publisher's
// side — it hears no one, everyone hears it — makes it declare every
// member dead and send them nothing but address challenges. Invalidations
// it publishes then reach no one; its challenges still carry its
// high-water mark, so the subscriber notices the frames it never got and,
// since the publisher cannot hear its NACKs, gives them up with a Gap
// (its cache flushes) instead of missing them silently.
func TestDeafOriginFlagged(t *testing.T) {
	a, atr, _ := faultNode(t, func(o *Options) { o.RepairTimeout = 200 * time.Millisecond })
	b, _, bgaps := faultNode(t, func(o *Options) { o.RepairTimeout = 200 * time.Millisecond }, a.Addr())
	waitFor(t, 5*time.Second, "mesh ready", func() bool {
		return aliveCount(a) == 1 && aliveCount(b) == 1 && a.Ready() && b.Ready()
	})
	lb := newKeyLog(b)
	atr.block(b.Addr()) // a hears nothing from b
	waitFor(t, 5*time.Second, "a declares b dead", func() bool { return a.Stats().MembersDead == 1 })
	const keys = 100
	for i := 0; i < keys; i++ {
		if err := a.Publish(context.Background(), []byte(fmt.Sprintf("deaf:%d", i)), false); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "a sent everything", func() bool { return a.Stats().RecordsSent == keys })
	waitFor(t, 10*time.Second, "b to flag what it never got", func() bool {
		ev, _, _ := bgaps.snapshot()
		return ev > 0 || lb.distinct() == keys
	})
	if lb.distinct() == keys {
		t.Fatal("b got every key although a had declared it dead: the scenario did not happen")
	}
	s := b.Stats()
	t.Logf("deaf origin: b applied %d of %d keys, Gap events %d (%v), NACKs %d", lb.distinct(), keys, s.GapEvents(), s.GapsGivenUp, s.NacksSent)
	checkRepairCounters(t, "b", s)
}
