package memnet_test

import (
	"context"
	"encoding/binary"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/warpmesh/warpmesh/engine"
)

// The scale suite: a cold start of N nodes on one memnet, then steady
// state, then one origin and several concurrent origins publishing on a
// loss-free network. It reports (and bounds) convergence, membership
// traffic per node, memory per node, coverage, copies per frame and Gap
// events. CI runs N=100; WARPMESH_SCALE=100,500,1000 runs the long suite.

func scaleSizes(t *testing.T) []int {
	env := os.Getenv("WARPMESH_SCALE")
	if env == "" {
		if raceEnabled {
			return []int{48}
		}
		return []int{100}
	}
	var sizes []int
	for _, f := range strings.Split(env, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 2 {
			t.Fatalf("WARPMESH_SCALE=%q: want sizes like 100,1000", env)
		}
		sizes = append(sizes, n)
	}
	return sizes
}

func TestScale(t *testing.T) {
	for _, size := range scaleSizes(t) {
		t.Run(strconv.Itoa(size), func(t *testing.T) { scaleRun(t, size) })
	}
}

func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

func scaleRun(t *testing.T, size int) {
	heap0 := heapInUse()
	hb := time.Second
	n := newNet(t, int64(size))
	var deaths, suspicions, gaps atomic.Int64
	nodes := startMesh(t, n, size, []int{0, 1, 2}, func(i int) engine.Options {
		return engine.Options{
			Heartbeat:        hb,
			SuspectAfter:     5 * hb,
			DeadAfter:        10 * hb,
			Fanout:           4,
			BatchSize:        8,
			PublishRing:      1 << 14,
			RetransmitBuffer: 256 << 10,
			Logger:           quietLogger,
			OnEvent: func(e engine.Event) {
				switch e.Type {
				case engine.EventDead:
					deaths.Add(1)
				case engine.EventSuspect:
					suspicions.Add(1)
				case engine.EventGap:
					gaps.Add(1)
				}
			},
		}
	})
	start := time.Now()
	cpu0 := processCPU()
	deadline := time.Now().Add(3 * time.Minute)
	for lastLog := time.Now(); ; {
		lo, ready := size, 0
		for _, node := range nodes {
			lo = min(lo, aliveCount(node))
			if node.Ready() {
				ready++
			}
		}
		if lo == size-1 && ready == size {
			break
		}
		if time.Since(lastLog) > 10*time.Second {
			t.Logf("N=%d after %v: fewest alive members known %d of %d, ready %d", size, time.Since(start).Round(time.Second), lo, size-1, ready)
			lastLog = time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("N=%d not converged after 3m: fewest alive members known %d of %d, ready %d of %d", size, lo, size-1, ready, size)
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not synchronisation
	}
	converge := time.Since(start)
	convergeCPU := processCPU() - cpu0

	// Steady state: membership traffic per node per second.
	before := make([]engine.Stats, size)
	for i, node := range nodes {
		before[i] = node.Stats()
	}
	window := 3 * hb
	t0 := time.Now()
	time.Sleep(window) // a measurement window, not synchronisation
	elapsed := time.Since(t0).Seconds()
	var dgrams, bytes uint64
	for i, node := range nodes {
		s := node.Stats()
		dgrams += s.FramesSent - before[i].FramesSent
		bytes += s.BytesSent - before[i].BytesSent
	}
	perNodeDgrams := float64(dgrams) / float64(size) / elapsed
	perNodeBytes := float64(bytes) / float64(size) / elapsed

	// One origin, then 10 concurrent origins, 10k keys each.
	copies := func() (first, dup uint64) {
		for _, node := range nodes {
			s := node.Stats()
			first += s.DataFrames
			dup += s.Duplicates
		}
		return
	}
	got := make([]atomic.Int64, size)
	for i, node := range nodes {
		node.OnInvalidate(func(engine.Invalidation) { got[i].Add(1) })
	}
	publish := func(origins []int, keys int) time.Duration {
		for i := range got {
			got[i].Store(0)
		}
		t0 := time.Now()
		for k, o := range origins {
			go func() {
				key := make([]byte, 16)
				binary.BigEndian.PutUint64(key, uint64(k))
				for j := 0; j < keys; j++ {
					binary.BigEndian.PutUint64(key[8:], uint64(j))
					if err := nodes[o].Publish(context.Background(), key, false); err != nil {
						return
					}
				}
			}()
		}
		want := func(i int) int64 {
			w := int64(len(origins) * keys)
			for _, o := range origins {
				if o == i {
					w -= int64(keys)
				}
			}
			return w
		}
		waitFor(t, 2*time.Minute, "every invalidation at every node", func() bool {
			for i := range nodes {
				if got[i].Load() < want(i) {
					return false
				}
			}
			return true
		})
		return time.Since(t0)
	}
	f0, d0 := copies()
	one := publish([]int{size / 2}, 10_000)
	f1, d1 := copies()
	ten := make([]int, 10)
	for i := range ten {
		ten[i] = (i * size / 10) % size
	}
	tenT := publish(ten, 10_000)
	f2, d2 := copies()
	heap := heapInUse() - min(heap0, heapInUse())

	t.Logf("N=%d: converged in %v (%.1f CPU-s); steady membership %.1f datagrams, %.0f B per node per s; heap %.1f KiB per node",
		size, converge.Round(time.Millisecond), convergeCPU.Seconds(), perNodeDgrams, perNodeBytes, float64(heap)/1024/float64(size))
	t.Logf("N=%d: 1 origin × 10k keys to all in %v, copies per frame %.3f; 10 origins × 10k in %v, copies per frame %.3f",
		size, one.Round(time.Millisecond), float64(f1-f0+d1-d0)/float64(max(f1-f0, 1)),
		tenT.Round(time.Millisecond), float64(f2-f1+d2-d1)/float64(max(f2-f1, 1)))
	t.Logf("N=%d: Gap events %d, false deaths %d, false suspicions %d", size, gaps.Load(), deaths.Load(), suspicions.Load())

	if g := gaps.Load(); g != 0 {
		t.Errorf("%d Gap events on a loss-free network", g)
	}
	if d := deaths.Load(); d != 0 {
		t.Errorf("%d false deaths in steady state", d)
	}
	if c := float64(f2-f0+d2-d0) / float64(max(f2-f0, 1)); c > 1.15 {
		t.Errorf("%.3f copies per node per frame, want <= 1.15", c)
	}
}

// processCPU is the CPU time (user + system) the test process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
