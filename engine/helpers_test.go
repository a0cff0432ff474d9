package engine

import (
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/warpmesh/warpmesh/codec"
	"github.com/warpmesh/warpmesh/internal/testnet"
)

// freePorts reserves n distinct UDP ports on 127.0.0.1 and releases them
// for the test to bind.
func freePorts(t testing.TB, n int) []int { t.Helper(); return testnet.FreePorts(t, n) }

var quietLogger = slog.New(slog.NewTextHandler(io.Discard, nil))

// unicastOptions returns options for a loopback, unicast-only test node.
func unicastOptions(port int, seeds ...int) Options {
	o := Options{
		Port:        port,
		BindAddr:    "127.0.0.1",
		UnicastOnly: true,
		Heartbeat:   40 * time.Millisecond,
		Cluster:     "test",
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

func startNode(t testing.TB, o Options) *Node {
	t.Helper()
	n, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	testnet.WaitFor(t, d, what, cond)
}

func aliveCount(n *Node) int {
	return n.Stats().MembersAlive
}

// keyLog records applied invalidations per key.
type keyLog struct {
	mu     sync.Mutex
	counts map[string]int
	origin map[string]uint64
	prefix map[string]bool
	total  int
}

func newKeyLog(n *Node) *keyLog {
	l := &keyLog{counts: map[string]int{}, origin: map[string]uint64{}, prefix: map[string]bool{}}
	n.OnInvalidate(func(inv Invalidation) {
		l.mu.Lock()
		k := string(inv.Key)
		l.counts[k]++
		l.origin[k] = inv.Origin
		l.prefix[k] = inv.Prefix
		l.total++
		l.mu.Unlock()
	})
	return l
}

func (l *keyLog) count(k string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.counts[k]
}

func (l *keyLog) distinct() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.counts)
}

// eventLog records events.
type eventLog struct {
	mu     sync.Mutex
	events []Event
}

func newEventLog(n *Node) *eventLog {
	l := &eventLog{}
	n.OnEvent(func(e Event) {
		l.mu.Lock()
		l.events = append(l.events, e)
		l.mu.Unlock()
	})
	return l
}

func (l *eventLog) has(typ EventType, id uint64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.events {
		if e.Type == typ && e.Member.ID == id {
			return true
		}
	}
	return false
}

// testDataFrame builds a DATA frame carrying keys as exact invalidations.
func testDataFrame(cluster, origin, epoch, seq uint64, keys ...string) []byte {
	var fb codec.FrameBuilder
	fb.Reset(make([]byte, 0, codec.DefaultMaxFrameSize), codec.Header{
		Type: codec.TypeData, HopLimit: 1, Cluster: cluster, Origin: origin, Epoch: epoch, Seq: seq, Packet: seq,
	}, codec.DefaultMaxFrameSize)
	for _, k := range keys {
		if !fb.Add([]byte(k), codec.RecordExact) {
			panic("test frame overflow")
		}
	}
	return fb.Finish()
}
