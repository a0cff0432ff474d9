package presets

import (
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/warpmesh/warpmesh/engine"
	"github.com/warpmesh/warpmesh/internal/testnet"
)

// freePorts reserves n distinct UDP ports on 127.0.0.1 and releases them
// for the test to bind.
func freePorts(t testing.TB, n int) []int { t.Helper(); return testnet.FreePorts(t, n) }

var quietLogger = slog.New(slog.NewTextHandler(io.Discard, nil))

// loopback returns options for a unicast-only test node on 127.0.0.1.
func loopback(port int, seeds ...int) engine.Options {
	o := engine.Options{
		Port:        port,
		BindAddr:    "127.0.0.1",
		UnicastOnly: true,
		Heartbeat:   40 * time.Millisecond,
		Cluster:     "presets-test",
		Logger:      quietLogger,
		PublishRing: 1 << 16,
		RecvBuffer:  1 << 20,
		SendBuffer:  1 << 20,
	}
	for _, s := range seeds {
		o.Peers = append(o.Peers, fmt.Sprintf("127.0.0.1:%d", s))
	}
	return o
}

// newLocal returns a cache on a node of its own with no peers.
func newLocal[T any](t testing.TB, opts ...Option) *Cache[T] {
	t.Helper()
	c, err := NewMeshEventual[T](loopback(freePorts(t, 1)[0]), opts...)
	if err != nil {
		t.Fatalf("NewMeshEventual: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	waitReady(t, c.Node())
	return c
}

// waitReady waits until n is coherent with its mesh: before that a cache
// stores nothing.
func waitReady(t testing.TB, n *engine.Node) {
	t.Helper()
	waitFor(t, 5*time.Second, "node ready", n.Ready)
}

// newMesh returns n caches whose nodes all know each other.
func newMesh[T any](t testing.TB, n int, opts ...Option) []*Cache[T] {
	t.Helper()
	ports := freePorts(t, n)
	cs := make([]*Cache[T], n)
	for i := range cs {
		var seeds []int
		if i > 0 {
			seeds = ports[:1]
		}
		c, err := NewMeshEventual[T](loopback(ports[i], seeds...), opts...)
		if err != nil {
			t.Fatalf("NewMeshEventual %d: %v", i, err)
		}
		t.Cleanup(func() { c.Close() })
		cs[i] = c
	}
	waitFor(t, 5*time.Second, "every node to see every other", func() bool {
		for _, c := range cs {
			if aliveCount(c.Node()) != n-1 || !c.Node().Ready() {
				return false
			}
		}
		return true
	})
	return cs
}

func aliveCount(n *engine.Node) int {
	return n.Stats().MembersAlive
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	testnet.WaitFor(t, d, what, cond)
}

// fakeClock is a Clock tests advance by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_700_000_000, 0)} }

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) Advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

var _ Clock = (*fakeClock)(nil)

// twoNodes returns two nodes on 127.0.0.1 that know each other and are
// ready; tweakB, if not nil, changes the second one's options.
func twoNodes(t *testing.T, tweakB func(*engine.Options)) (a, b *engine.Node) {
	t.Helper()
	p := freePorts(t, 2)
	var err error
	if a, err = engine.New(loopback(p[0])); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	bo := loopback(p[1], p[0])
	if tweakB != nil {
		tweakB(&bo)
	}
	if b, err = engine.New(bo); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	waitFor(t, 5*time.Second, "the two nodes to meet and be ready", func() bool {
		return aliveCount(a) == 1 && aliveCount(b) == 1 && a.Ready() && b.Ready()
	})
	return a, b
}

// holdGaps subscribes, on n, a handler that holds the first Gap event up
// (as a slow handler or an event goroutine without a CPU would) until
// release is called; seen is closed when it arrives. Handlers subscribed
// later run after it. A test that fails before releasing is released at
// cleanup, so the node can close.
func holdGaps(t *testing.T, n *engine.Node) (seen chan struct{}, release func()) {
	t.Helper()
	seen, held := make(chan struct{}), make(chan struct{})
	var once, freed sync.Once
	release = func() { freed.Do(func() { close(held) }) }
	unsub := n.OnEvent(func(e engine.Event) {
		if e.Type == engine.EventGap {
			once.Do(func() { close(seen) })
			<-held
		}
	})
	t.Cleanup(func() { release(); unsub() })
	return seen, release
}
