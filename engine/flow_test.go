package engine

import (
	"bytes"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warpmesh/warpmesh/codec"
	"github.com/warpmesh/warpmesh/sockopt"
)

// ackGate is a receiver's transport that can hold back the ACK frames the
// node writes (copies kept, in order) and release them later; every other
// frame passes.
type ackGate struct {
	Transport
	mu      sync.Mutex
	holding bool
	held    []sockopt.Message
	passed  atomic.Uint64 // ACK frames written through
}

func isAck(b []byte) bool {
	h, _, err := codec.ParseHeader(b)
	return err == nil && h.Type == codec.TypeAck
}

func (g *ackGate) WriteBatch(msgs []sockopt.Message) (int, error) {
	pass := make([]sockopt.Message, 0, len(msgs)) // a test transport may allocate
	g.mu.Lock()
	for _, m := range msgs {
		if isAck(m.Buf) {
			if g.holding {
				g.held = append(g.held, sockopt.Message{Buf: bytes.Clone(m.Buf), Addr: m.Addr})
				continue
			}
			g.passed.Add(1)
		}
		pass = append(pass, m)
	}
	g.mu.Unlock()
	if err := writeAll(g.Transport, pass); err != nil {
		return 0, err
	}
	return len(msgs), nil
}

func writeAll(t Transport, msgs []sockopt.Message) error {
	for len(msgs) > 0 {
		k, err := t.WriteBatch(msgs)
		if err != nil {
			return err
		}
		msgs = msgs[k:]
	}
	return nil
}

// hold starts holding ACKs.
func (g *ackGate) hold() {
	g.mu.Lock()
	g.holding = true
	g.mu.Unlock()
}

// release stops holding and sends what was held, returning how many.
func (g *ackGate) release(t testing.TB) int {
	g.mu.Lock()
	held := g.held
	g.held, g.holding = nil, false
	g.passed.Add(uint64(len(held)))
	g.mu.Unlock()
	if err := writeAll(g.Transport, held); err != nil {
		t.Fatalf("releasing ACKs: %v", err)
	}
	return len(held)
}

// gatedPair starts an origin a and a receiver b whose ACKs pass through
// a gate; a's window is window frames.
func gatedPair(t *testing.T, window int) (a, b *Node, g *ackGate, applied *atomic.Uint64) {
	t.Helper()
	p := freePorts(t, 2)
	oa := unicastOptions(p[0])
	oa.FlowWindow = window
	a = startNode(t, oa)
	conn, err := sockopt.Listen(sockopt.Config{BindAddr: netip.MustParseAddr("127.0.0.1"), Port: p[1], RecvBuffer: 1 << 20, SendBuffer: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	g = &ackGate{Transport: conn}
	ob := unicastOptions(p[1], p[0])
	ob.Transport, ob.BindAddr = g, ""
	b = startNode(t, ob)
	applied = new(atomic.Uint64)
	b.OnInvalidate(func(Invalidation) { applied.Add(1) })
	waitFor(t, 5*time.Second, "join", func() bool { return aliveCount(a) == 1 && aliveCount(b) == 1 })
	return a, b, g, applied
}

// publishOne publishes one invalidation and waits until b applied it, so
// every call is one frame of its own.
func publishOne(t *testing.T, a *Node, applied *atomic.Uint64) {
	t.Helper()
	want := applied.Load() + 1
	if err := a.Invalidate("flow"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "delivery", func() bool { return applied.Load() >= want })
}

// acked returns the progress a knows b made on a's stream.
func acked(a *Node) uint64 {
	low, _ := a.flow.slowest(a.members.view.Load().ids, ^uint64(0))
	return low
}

func TestFlowControlWindowHoldsAndTimesOut(t *testing.T) {
	const window = 8
	a, b, g, applied := gatedPair(t, window)
	for range 40 {
		publishOne(t, a, applied)
	}
	waitFor(t, 5*time.Second, "ACKs to reach the origin", func() bool {
		return b.Stats().AcksSent > 0 && a.Stats().AcksReceived > 0 && acked(a) > 0
	})

	// Hold b's ACKs; once every ACK let through has arrived, what a knows
	// of b is fixed.
	g.hold()
	waitFor(t, 5*time.Second, "ACKs in flight", func() bool { return a.Stats().AcksReceived == g.passed.Load() })
	low := acked(a)
	waitFor(t, 5*time.Second, "high-water mark", func() bool { return a.hwm.Load() == 40 })
	if low > 40 || low+ackEvery < 40 {
		t.Fatalf("origin knows receiver progress %d after 40 frames (ACK every %d)", low, ackEvery)
	}
	s0 := a.Stats()
	// Every frame up to low+window leaves without waiting.
	for seq := uint64(41); seq <= low+window; seq++ {
		publishOne(t, a, applied)
	}
	if s := a.Stats(); s.FlowWaits != s0.FlowWaits {
		t.Fatalf("origin waited %d times within the window (frames %d..%d, receiver at %d)", s.FlowWaits-s0.FlowWaits, 41, low+window, low)
	}
	// The next one waits for an ACK that never comes, then leaves anyway:
	// the wait ends by timeout, counted.
	start := time.Now()
	publishOne(t, a, applied)
	took := time.Since(start)
	if s := a.Stats(); s.FlowWaits != s0.FlowWaits+1 || s.FlowTimeouts != s0.FlowTimeouts+1 {
		t.Fatalf("first frame beyond the window: waits %d timeouts %d, want 1 each", s.FlowWaits-s0.FlowWaits, s.FlowTimeouts-s0.FlowTimeouts)
	}
	if took < flowMaxWait {
		t.Fatalf("first frame beyond the window delivered after %v, before the %v wait could end", took, flowMaxWait)
	}
	// The receiver that let the wait run out is waived: the frames after
	// it leave at once, however far beyond its last report, until it
	// reports again (a deaf origin pays one wait, not one per flush).
	for range 2 * window {
		publishOne(t, a, applied)
	}
	if s := a.Stats(); s.FlowWaits != s0.FlowWaits+1 {
		t.Fatalf("origin waited %d more times for a receiver whose wait had run out", s.FlowWaits-s0.FlowWaits-1)
	}
	if b.Stats().AcksSent <= g.passed.Load() {
		t.Fatal("the receiver sent no ACK while they were held: nothing was tested")
	}

	// Released, the held ACKs move the origin on; the waiver ends with
	// the progress they report, and the origin does not wait meanwhile.
	if n := g.release(t); n == 0 {
		t.Fatal("no ACK was held")
	}
	hwm := a.hwm.Load()
	waitFor(t, 5*time.Second, "released ACKs", func() bool { return acked(a) >= hwm-ackEvery && acked(a) > low })
	s1 := a.Stats()
	publishOne(t, a, applied)
	if s := a.Stats(); s.FlowWaits != s1.FlowWaits {
		t.Fatal("origin still waited after the receiver's ACKs arrived")
	}
	// Held again, the receiver holds the origin back again: a receiver
	// that reports is flow-controlled as before.
	g.hold()
	waitFor(t, 5*time.Second, "ACKs in flight", func() bool { return a.Stats().AcksReceived == g.passed.Load() })
	s2 := a.Stats()
	for range window + ackEvery + 1 { // the window is passed by then whatever b last reported
		publishOne(t, a, applied)
		if a.Stats().FlowWaits != s2.FlowWaits {
			break
		}
	}
	if s := a.Stats(); s.FlowWaits != s2.FlowWaits+1 || s.FlowTimeouts != s2.FlowTimeouts+1 {
		t.Fatalf("beyond the window of a reporting receiver again: waits %d timeouts %d, want 1 each", s.FlowWaits-s2.FlowWaits, s.FlowTimeouts-s2.FlowTimeouts)
	}
	g.release(t)
}

// A receiver's progress report ends a wait before its timeout. The
// origin's waits are driven directly (a sender of the test's own on a's
// stream, b's ACKs held so a's view of b moves only when the test says);
// the report path from ACK frames is covered above (released ACKs move
// the origin on). A wait the test was too slow to end within flowMaxWait
// on a loaded machine is tried again.
func TestFlowControlAckEndsWait(t *testing.T) {
	const window = 8
	a, b, g, applied := gatedPair(t, window)
	for range 20 {
		publishOne(t, a, applied)
	}
	waitFor(t, 5*time.Second, "ACKs", func() bool { return acked(a) > 0 })
	g.hold()
	waitFor(t, 5*time.Second, "ACKs in flight", func() bool { return a.Stats().AcksReceived == g.passed.Load() })
	low := acked(a)
	var s sender
	if err := s.init(a); err != nil {
		t.Fatal(err)
	}
	v := a.members.view.Load()
	for attempt := 1; ; attempt++ {
		before := a.Stats()
		done := make(chan struct{})
		go func(seq uint64) {
			s.awaitWindow(v, seq) // one frame beyond the window
			close(done)
		}(low + window + 1)
		waitFor(t, 5*time.Second, "the origin to wait", func() bool { return a.Stats().FlowWaits > before.FlowWaits })
		low++
		a.flow.report(b.ID(), low) // the receiver's progress arrives
		<-done
		after := a.Stats()
		if after.FlowWaits != before.FlowWaits+1 {
			t.Fatalf("one call waited %d times", after.FlowWaits-before.FlowWaits)
		}
		if after.FlowTimeouts == before.FlowTimeouts {
			t.Logf("attempt %d: the report ended the wait", attempt)
			return
		}
		if attempt == 50 {
			t.Fatal("50 waits all ended by timeout although a report arrived in each")
		}
	}
}

// At full speed to a slow receiver the origin waits, and loses nothing.
// How each wait ends depends on the machine (a receiver acknowledges once
// per batch it handles; a batch slower than flowMaxWait ends the wait by
// timeout), so both counts are logged.
func TestFlowControlFullSpeed(t *testing.T) {
	const window = 96
	a, b, _, applied := gatedPair(t, window)
	// A slow consumer (2 µs per invalidation, spent on the receive path)
	// makes the origin outrun it whatever the machine's load.
	b.OnInvalidate(func(Invalidation) {
		for start := time.Now(); time.Since(start) < 2*time.Microsecond; {
		}
	})
	// Flow control holds an origin back only for receivers that have
	// reported: let b report once before the burst (on a loaded machine
	// its first ACK could otherwise come after the last frame left).
	publishOne(t, a, applied)
	waitFor(t, 5*time.Second, "b's first ACK", func() bool { return a.Stats().AcksReceived > 0 })
	const total = 60000 // ~1200 frames of 16-byte keys
	key := []byte("flow:00000000000")
	for i := range total {
		key[5], key[6], key[7], key[8] = byte(i>>24), byte(i>>16), byte(i>>8), byte(i)
		if err := a.InvalidateBytes(key); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 20*time.Second, "every invalidation", func() bool { return applied.Load() == total+1 })
	s := a.Stats()
	t.Logf("window %d: %d frames sent, %d waits, %d timeouts, %d ACKs received; receiver sent %d ACKs",
		window, s.FramesSent, s.FlowWaits, s.FlowTimeouts, s.AcksReceived, b.Stats().AcksSent)
	if s.FlowWaits == 0 || s.AcksReceived == 0 {
		t.Fatalf("the origin never waited (%d) or heard no ACK (%d) with a %d-frame window over ~1200 frames to a slow receiver",
			s.FlowWaits, s.AcksReceived, window)
	}
	if s.FlowTimeouts > s.FlowWaits {
		t.Fatalf("%d timeouts for %d waits", s.FlowTimeouts, s.FlowWaits)
	}
}

func TestFlowControlOff(t *testing.T) {
	a, b, g, applied := gatedPair(t, -1)
	for range 20 {
		publishOne(t, a, applied)
	}
	waitFor(t, 5*time.Second, "ACKs", func() bool { return b.Stats().AcksSent > 0 })
	g.hold() // the origin would wait after 64 frames if flow control were on
	start := time.Now()
	for range 200 {
		publishOne(t, a, applied)
	}
	if s := a.Stats(); s.FlowWaits != 0 || s.FlowTimeouts != 0 {
		t.Fatalf("FlowWindow < 0: %d waits, %d timeouts", s.FlowWaits, s.FlowTimeouts)
	}
	t.Logf("200 frames without ACKs in %v", time.Since(start))
}
