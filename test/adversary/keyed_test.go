package adversary

import (
	"crypto/rand"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warpmesh/warpmesh/codec"
	"github.com/warpmesh/warpmesh/engine"
)

func testKeyring(t testing.TB) *engine.Keyring {
	t.Helper()
	k := make([]byte, engine.KeySize)
	for i := range k {
		k[i] = byte(i * 7)
	}
	ring, err := engine.NewKeyring(k)
	if err != nil {
		t.Fatal(err)
	}
	return ring
}

func keyed(t testing.TB) func(*engine.Options) {
	ring := testKeyring(t)
	return func(o *engine.Options) { o.Keyring = ring }
}

// TestKeyedJunk: frames that claim authentication, each from a random
// origin and epoch. The node derives keys to try them; its cache of
// derived keys must stay within its cap.
func TestKeyedJunk(t *testing.T) {
	tg := startNode(t, nil, keyed(t))
	a := newAttacker(t)
	frames := pick(50000, 100000)
	heap0, rss0 := heapMB(), rssMB()
	junk := make([]byte, codec.AliveFixedLen+codec.TagLen)
	for i := range frames {
		h := a.header(codec.TypeAlive, randID(), randID())
		h.Flags = codec.FlagAuth
		h.PayloadLen = codec.AliveFixedLen
		rand.Read(junk)
		b := append(codec.AppendHeader(a.buf[:0], &h), junk...)
		a.send(tg.Addr(), b)
		if i%512 == 0 { // keep the node's socket buffer from overflowing
			waitFor(t, 30*time.Second, "node to keep up", func() bool { return tg.Stats().FramesReceived >= uint64(i)*9/10 })
		}
	}
	waitFor(t, 30*time.Second, "every junk frame handled", func() bool {
		s := tg.Stats()
		return s.FramesReceived >= uint64(frames)*9/10
	})
	heap1, rss1 := heapMB(), rssMB()
	s := tg.Stats()
	t.Logf("figure: keyed junk: %d frames (%d B): received %d, auth drops %d; heap %.1f → %.1f MiB, RSS %.1f → %.1f MiB",
		frames, a.sent.Load(), s.FramesReceived, s.Drops[engine.DropAuth], heap0, heap1, rss0, rss1)
	if heap1-heap0 > 16 {
		t.Errorf("heap grew %.1f MiB under junk frames (bound 16)", heap1-heap0)
	}
	if len(tg.Members()) != 0 {
		t.Errorf("junk added members: %v", tg.Members())
	}
}

// TestKeyedJunkFlood: junk claiming authentication keeps coming while a
// keyed member publishes and a keyed newcomer joins: each junk frame costs
// a key derivation, which must not starve legitimate traffic.
func TestKeyedJunkFlood(t *testing.T) {
	opt := keyed(t)
	tg := startNode(t, nil, opt)
	legit := startNode(t, []string{tg.Addr().String()}, opt)
	waitFor(t, 10*time.Second, "keyed member to join", func() bool { return tg.member(legit.ID()) && legit.member(tg.ID()) })
	samples := pick(9, 31)
	quiet := latency(t, legit, tg, "quiet:", samples)
	rate := pick(20000, 20000)
	if raceEnabled {
		rate = 5000
	}
	a := newAttacker(t)
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		junk := make([]byte, codec.AliveFixedLen+codec.TagLen)
		start := time.Now()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if ahead := time.Duration(float64(i)/float64(rate)*float64(time.Second)) - time.Since(start); ahead > 0 {
				time.Sleep(ahead) // pacing
			}
			h := a.header(codec.TypeAlive, randID(), randID())
			h.Flags = codec.FlagAuth
			h.PayloadLen = codec.AliveFixedLen
			rand.Read(junk)
			a.send(tg.Addr(), append(codec.AppendHeader(a.buf[:0], &h), junk...))
		}
	}()
	halt := func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		<-done
	}
	defer halt()
	waitFor(t, 10*time.Second, "half a second of junk", func() bool { return tg.Stats().Drops[engine.DropAuth] > uint64(rate/2) })
	during := latency(t, legit, tg, "junk:", samples)
	join, apply := joinAndApplyWith(t, tg, "keyed-newcomer", opt)
	drops := tg.Stats().Drops[engine.DropAuth]
	halt()
	t.Logf("figure: keyed junk flood at %d/s: %d dropped (auth); invalidation latency p50 quiet %v, during %v (%.1fx); keyed newcomer joined in %v, applied in %v",
		rate, drops, quiet, during, float64(during)/float64(max(quiet, time.Microsecond)), join, apply)
	if join > time.Second || apply > time.Second {
		t.Errorf("newcomer joined in %v, invalidation applied in %v (bound 1s each)", join, apply)
	}
	if bound := max(10*quiet, 20*time.Millisecond); during > bound {
		t.Errorf("invalidation latency during junk %v, bound %v (quiet %v)", during, bound, quiet)
	}
}

// capture is a UDP socket that keeps every datagram it receives.
type capture struct {
	conn *net.UDPConn
	mu   sync.Mutex
	got  [][]byte
}

func newCapture(t testing.TB) *capture {
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(attackerIP, 0)))
	if err != nil {
		t.Fatal(err)
	}
	cp := &capture{conn: c}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			buf := make([]byte, 65536)
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			cp.mu.Lock()
			cp.got = append(cp.got, buf[:n])
			cp.mu.Unlock()
		}
	}()
	t.Cleanup(func() { c.Close(); <-done })
	return cp
}

func (c *capture) frames() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][]byte(nil), c.got...)
}

// TestKeyedReplay: authentic sealed frames of a mesh, captured, replayed
// after its nodes died to a keyed node that never saw them. The dead must
// not come back as members.
func TestKeyedReplay(t *testing.T) {
	opt := keyed(t)
	cp := newCapture(t)
	x := startNode(t, nil, opt)
	y := startNode(t, []string{x.Addr().String(), cp.conn.LocalAddr().String()}, opt)
	waitFor(t, 10*time.Second, "keyed mesh to form", func() bool { return x.member(y.ID()) && y.member(x.ID()) })
	if err := y.Invalidate("captured"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "sealed heartbeats captured", func() bool { return len(cp.frames()) >= 5 })
	x.Abort()
	y.Abort()
	var joins atomic.Int64
	z := startNode(t, nil, func(o *engine.Options) {
		opt(o)
		o.OnEvent = func(e engine.Event) {
			if e.Type == engine.EventJoin {
				joins.Add(1)
			}
		}
	})
	a := newAttacker(t)
	frames := cp.frames()
	for _, f := range frames {
		a.send(z.Addr(), f)
	}
	resurrected := 0
	deadline := time.Now().Add(pick(20*testHeartbeat, 100*testHeartbeat))
	for time.Now().Before(deadline) {
		if z.member(x.ID()) || z.member(y.ID()) {
			resurrected++
		}
		time.Sleep(time.Millisecond) // sampling interval
	}
	t.Logf("figure: keyed replay: %d captured sealed frames replayed; join events %d; samples with a dead node alive %d; heartbeats taken %d",
		len(frames), joins.Load(), resurrected, z.Stats().HeartbeatsReceived)
	if resurrected > 0 || joins.Load() > 0 {
		t.Errorf("replayed frames resurrected dead members: %d join events", joins.Load())
	}
}
