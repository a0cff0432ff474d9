package memnet_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warpmesh/warpmesh/engine"
	"github.com/warpmesh/warpmesh/engine/memnet"
)

// churnMesh is a mesh whose nodes are restarted in place (same address,
// new id and epoch), with every node's Gap events counted.
type churnMesh struct {
	t     *testing.T
	net   *memnet.Network
	mu    sync.Mutex
	nodes []*engine.Node
	gaps  atomic.Int64
}

func churnOptions() engine.Options {
	return engine.Options{
		Heartbeat:    50 * time.Millisecond,
		SuspectAfter: 500 * time.Millisecond, DeadAfter: time.Second,
		PublishRing: 1 << 14,
		Logger:      quietLogger,
	}
}

func (m *churnMesh) start(i int) *engine.Node {
	m.t.Helper()
	ep, err := m.net.Listen(simAddr(i))
	if err != nil {
		m.t.Fatal(err)
	}
	o := churnOptions()
	o.Transport, o.AdvertiseAddr = ep, ep.LocalAddr().String()
	for s := 0; s < 2; s++ {
		if s != i {
			o.Peers = append(o.Peers, simAddr(s).String())
		}
	}
	o.OnEvent = func(e engine.Event) {
		if e.Type == engine.EventGap {
			m.gaps.Add(1)
		}
	}
	n, err := engine.New(o)
	if err != nil {
		m.t.Fatal(err)
	}
	m.mu.Lock()
	m.nodes[i] = n
	m.mu.Unlock()
	return n
}

func (m *churnMesh) all() []*engine.Node {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]*engine.Node(nil), m.nodes...)
}

// whole reports whether every node is ready and sees every other alive.
func (m *churnMesh) whole() bool {
	nodes := m.all()
	for _, n := range nodes {
		if !n.Ready() || aliveCount(n) != len(nodes)-1 {
			return false
		}
	}
	return true
}

// publishing keeps node 0 and node 1 publishing until stop is closed.
func (m *churnMesh) publishing(stop <-chan struct{}, wg *sync.WaitGroup) {
	for p := 0; p < 2; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := []byte("churn:key-0000")
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key[len(key)-1] = byte('0' + i%10)
				if err := m.all()[p].Publish(context.Background(), key, false); err != nil {
					return // closed by the test's end
				}
				if i%32 == 0 {
					time.Sleep(time.Millisecond) // pacing, not synchronisation
				}
			}
		}()
	}
}

// TestRestartsWithoutGapStorm: under continuous publishing on a
// loss-free network, a rolling restart of every other node and then a
// mass restart of all of them raise no Gap anywhere, and the mesh is whole
// and ready again each time.
func TestRestartsWithoutGapStorm(t *testing.T) {
	size := 16
	if raceEnabled || testing.Short() {
		size = 8
	}
	m := &churnMesh{t: t, net: newNet(t, 42), nodes: make([]*engine.Node, size)}
	for i := range size {
		m.start(i)
	}
	t.Cleanup(func() {
		for _, n := range m.all() {
			n.Abort()
		}
	})
	waitFor(t, 10*time.Second, "mesh whole and ready", m.whole)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	m.publishing(stop, &wg)

	// Rolling: each node but the two publishers, one at a time.
	var worst time.Duration
	for i := 2; i < size; i++ {
		m.all()[i].Close()
		start := time.Now()
		n := m.start(i)
		waitFor(t, 10*time.Second, "restarted node ready and seen by all", func() bool { return n.Ready() && m.whole() })
		worst = max(worst, time.Since(start))
	}
	close(stop)
	wg.Wait()
	t.Logf("rolling restart of %d of %d nodes under publishing: worst time to whole+ready %v, Gap events %d",
		size-2, size, worst.Round(time.Millisecond), m.gaps.Load())
	if g := m.gaps.Load(); g != 0 {
		t.Fatalf("%d Gap events during a rolling restart on a loss-free network", g)
	}

	// Mass: every node at once (Abort, as a crash of the whole service).
	for _, n := range m.all() {
		n.Abort()
	}
	start := time.Now()
	for i := range size {
		m.start(i)
	}
	stop = make(chan struct{})
	m.publishing(stop, &wg)
	waitFor(t, 20*time.Second, "mesh whole and ready after a mass restart", m.whole)
	took := time.Since(start)
	close(stop)
	wg.Wait()
	t.Logf("mass restart of %d nodes under publishing: whole+ready in %v, Gap events %d", size, took.Round(time.Millisecond), m.gaps.Load())
	if g := m.gaps.Load(); g != 0 {
		t.Fatalf("%d Gap events after a mass restart on a loss-free network", g)
	}
}
