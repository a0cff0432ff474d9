package engine

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warpmesh/warpmesh/codec"
)

func TestThreeNodesUnicastSingleSeed(t *testing.T) {
	p := freePorts(t, 3)
	a := startNode(t, unicastOptions(p[0]))
	b := startNode(t, unicastOptions(p[1], p[0]))
	c := startNode(t, unicastOptions(p[2], p[0]))
	nodes := []*Node{a, b, c}
	logs := []*keyLog{newKeyLog(a), newKeyLog(b), newKeyLog(c)}

	for _, n := range nodes {
		waitFor(t, 5*time.Second, "every node to know the other two", func() bool { return aliveCount(n) == 2 })
	}
	// b learned c only through a's digest (b's seed is a), and vice versa.
	for i, n := range nodes {
		if err := n.Invalidate(fmt.Sprintf("user:%d", i)); err != nil {
			t.Fatal(err)
		}
		if err := n.InvalidatePrefix(fmt.Sprintf("team:%d:", i)); err != nil {
			t.Fatal(err)
		}
	}
	for i, l := range logs {
		for j := range nodes {
			if i == j {
				continue
			}
			k := fmt.Sprintf("user:%d", j)
			waitFor(t, 5*time.Second, k+" at node "+fmt.Sprint(i), func() bool { return l.count(k) > 0 })
			pk := fmt.Sprintf("team:%d:", j)
			waitFor(t, 5*time.Second, pk, func() bool { return l.count(pk) > 0 })
			l.mu.Lock()
			if l.origin[k] != nodes[j].ID() || l.prefix[k] || !l.prefix[pk] {
				t.Errorf("node %d: %s origin %x prefix %v, %s prefix %v", i, k, l.origin[k], l.prefix[k], pk, l.prefix[pk])
			}
			l.mu.Unlock()
		}
		own := fmt.Sprintf("user:%d", i)
		if l.count(own) != 0 {
			t.Errorf("node %d applied its own invalidation without EchoLocal", i)
		}
	}
	// Exactly once: a fence published after everything else arrives after
	// any duplicate could have.
	for _, n := range nodes {
		n.Invalidate("fence")
	}
	for _, l := range logs {
		waitFor(t, 5*time.Second, "fences", func() bool { return l.count("fence") == 2 })
	}
	for i, l := range logs {
		l.mu.Lock()
		for k, c := range l.counts {
			if c != 1 && k != "fence" {
				t.Errorf("node %d applied %q %d times, want 1", i, k, c)
			}
		}
		l.mu.Unlock()
	}
}

func TestPublishErrors(t *testing.T) {
	p := freePorts(t, 1)
	n := startNode(t, unicastOptions(p[0]))
	if err := n.Invalidate(""); !errors.Is(err, codec.ErrEmptyKey) {
		t.Errorf("empty key: %v", err)
	}
	if err := n.Invalidate(strings.Repeat("k", codec.MaxKeyLen+1)); !errors.Is(err, codec.ErrKeyTooLong) {
		t.Errorf("long key: %v", err)
	}
	if err := n.Invalidate(strings.Repeat("k", codec.MaxKeyLen)); err != nil {
		t.Errorf("max key: %v", err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := n.Invalidate("x"); !errors.Is(err, ErrClosed) || !errors.Is(err, net.ErrClosed) {
		t.Errorf("after close: %v", err)
	}
}

func TestOptionValidation(t *testing.T) {
	cases := []struct {
		name   string
		opts   Options
		option string
	}{
		{"port", Options{Port: 70000}, "Port"},
		{"heartbeat", Options{Heartbeat: time.Microsecond}, "Heartbeat"},
		{"dead before suspect", Options{Heartbeat: time.Second, SuspectAfter: 3 * time.Second, DeadAfter: 2 * time.Second}, "DeadAfter"},
		{"challenge rate", Options{ChallengeRate: -1}, "ChallengeRate"},
		{"frame", Options{MaxFrameSize: 100}, "MaxFrameSize"},
		{"frame big", Options{MaxFrameSize: 70000}, "MaxFrameSize"},
		{"fanout", Options{Fanout: -1}, "Fanout"},
		{"group", Options{Group: "10.0.0.1", Interface: "lo"}, "Group"},
		{"peers", Options{Peers: []string{"nocolon"}, UnicastOnly: true}, "Peers"},
		{"peer port", Options{Peers: []string{"127.0.0.1:0"}, UnicastOnly: true}, "Peers"},
		{"bind", Options{BindAddr: "not-an-ip", UnicastOnly: true}, "BindAddr"},
		{"interface", Options{Interface: "nosuchif0"}, "Interface"},
		{"advertise", Options{AdvertiseAddr: "x:y", UnicastOnly: true, BindAddr: "127.0.0.1"}, "AdvertiseAddr"},
		{"ring", Options{PublishRing: 5000, UnicastOnly: true}, "PublishRing"},
		{"batch", Options{BatchSize: 5000, UnicastOnly: true}, "BatchSize"},
		{"cluster", Options{Cluster: strings.Repeat("c", 256)}, "Cluster"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n, err := New(tc.opts)
			if err == nil {
				n.Close()
				t.Fatal("New accepted bad options")
			}
			var oe *OptionError
			if !errors.As(err, &oe) || oe.Option != tc.option || !errors.Is(err, ErrInvalidOption) {
				t.Fatalf("error %q does not name option %s", err, tc.option)
			}
			if !strings.Contains(err.Error(), tc.option) {
				t.Fatalf("message %q lacks option name", err)
			}
		})
	}
}

func TestClustersIsolated(t *testing.T) {
	p := freePorts(t, 2)
	oa := unicastOptions(p[0], p[1])
	oa.Cluster = "red"
	ob := unicastOptions(p[1], p[0])
	ob.Cluster = "blue"
	a := startNode(t, oa)
	b := startNode(t, ob)
	la, lb := newKeyLog(a), newKeyLog(b)
	waitFor(t, 5*time.Second, "heartbeats to cross", func() bool {
		return b.Stats().Drops[DropWrongCluster] >= 2 && a.Stats().Drops[DropWrongCluster] >= 2
	})
	if len(a.Members()) != 0 || len(b.Members()) != 0 {
		t.Fatalf("clusters mixed: %v / %v", a.Members(), b.Members())
	}
	if la.distinct() != 0 || lb.distinct() != 0 {
		t.Fatal("invalidation crossed clusters")
	}
}

func TestEchoLocal(t *testing.T) {
	p := freePorts(t, 1)
	o := unicastOptions(p[0])
	o.EchoLocal = true
	n := startNode(t, o)
	l := newKeyLog(n)
	n.Invalidate("mine")
	waitFor(t, 5*time.Second, "echo", func() bool { return l.count("mine") == 1 })
}

func TestPortInUseFails(t *testing.T) {
	p := freePorts(t, 1)
	startNode(t, unicastOptions(p[0]))
	n, err := New(unicastOptions(p[0]))
	if err == nil {
		n.Close()
		t.Fatal("a second node bound a port already in use")
	}
	if !strings.Contains(err.Error(), "listen") {
		t.Fatalf("error does not say what failed: %v", err)
	}
}

func TestGSODelivers(t *testing.T) {
	p := freePorts(t, 2)
	a := startNode(t, unicastOptions(p[0])) // GSO is on by default
	if a.tx.gso == nil {
		t.Skip("kernel without UDP GSO")
	}
	b := startNode(t, unicastOptions(p[1], p[0]))
	lb := newKeyLog(b)
	waitFor(t, 5*time.Second, "join", func() bool { return aliveCount(a) == 1 })
	const n = 20000 // many full frames per flush
	for i := 0; i < n; i++ {
		a.Invalidate(fmt.Sprintf("gso-key-%08d", i))
	}
	waitFor(t, 10*time.Second, "every key through padded GSO runs", func() bool { return lb.distinct() == n })
	if a.Stats().FramesSent <= a.Stats().SendBatches {
		t.Fatal("no flush carried more than one frame")
	}
}

func TestUnregisterHandlers(t *testing.T) {
	p := freePorts(t, 2)
	a := startNode(t, unicastOptions(p[0]))
	b := startNode(t, unicastOptions(p[1], p[0]))
	waitFor(t, 5*time.Second, "join", func() bool { return aliveCount(a) == 1 })
	keep := newKeyLog(b)
	var calls atomic.Int64
	unreg := b.OnInvalidate(func(Invalidation) { calls.Add(1) })
	a.Invalidate("first")
	waitFor(t, 5*time.Second, "first", func() bool { return keep.count("first") == 1 && calls.Load() == 1 })
	unreg()
	// Handlers run in registration order, so a handler registered after
	// unreg() that has seen "second" proves the removed one's turn passed.
	after := newKeyLog(b)
	a.Invalidate("second")
	waitFor(t, 5*time.Second, "second", func() bool { return keep.count("second") == 1 && after.count("second") == 1 })
	if calls.Load() != 1 {
		t.Fatalf("an unregistered handler was called: %d calls", calls.Load())
	}
	var events atomic.Int64
	stop := b.OnEvent(func(Event) { events.Add(1) })
	stop()
	fence := newEventLog(b) // registered after: its leave event comes after any call of the removed one
	a.Close()
	waitFor(t, 5*time.Second, "leave seen", func() bool { return fence.has(EventLeave, a.ID()) })
	if events.Load() != 0 {
		t.Fatal("an unregistered event handler was called")
	}
}

func TestAnyPort(t *testing.T) {
	a := startNode(t, unicastOptions(AnyPort))
	if a.Addr().Port() == 0 || a.Addr() != a.LocalAddr() {
		t.Fatalf("advertised %v, bound %v", a.Addr(), a.LocalAddr())
	}
	o := unicastOptions(AnyPort)
	o.Peers = []string{a.Addr().String()}
	b := startNode(t, o)
	waitFor(t, 5*time.Second, "join through a kernel-chosen port", func() bool { return aliveCount(a) == 1 && aliveCount(b) == 1 })
	if _, err := New(Options{Port: AnyPort, Interface: "lo", Group: "239.1.2.3"}); err == nil {
		t.Fatal("AnyPort with multicast and no GroupPort accepted")
	}
}

func TestLoopbackSeedsAdvertiseLoopback(t *testing.T) {
	p := freePorts(t, 1)
	o := unicastOptions(AnyPort, p[0])
	o.BindAddr = "" // wildcard bind: the advertised address is chosen
	n := startNode(t, o)
	if !n.Addr().Addr().IsLoopback() {
		t.Fatalf("with loopback seeds, advertised %v", n.Addr())
	}
}

func TestDetectionDefaults(t *testing.T) {
	for _, tc := range []struct {
		heartbeat, suspect, wantSuspect, wantDead time.Duration
	}{
		{heartbeat: 10 * time.Millisecond, wantSuspect: 30 * time.Millisecond, wantDead: 60 * time.Millisecond},
		{heartbeat: 10 * time.Millisecond, suspect: 100 * time.Millisecond, wantSuspect: 100 * time.Millisecond, wantDead: 200 * time.Millisecond},
	} {
		o := unicastOptions(AnyPort)
		o.Heartbeat, o.SuspectAfter = tc.heartbeat, tc.suspect
		n := startNode(t, o)
		if n.cfg.SuspectAfter != tc.wantSuspect || n.cfg.DeadAfter != tc.wantDead {
			t.Errorf("Heartbeat %v SuspectAfter %v: got SuspectAfter %v DeadAfter %v, want %v %v (the Options docs)",
				tc.heartbeat, tc.suspect, n.cfg.SuspectAfter, n.cfg.DeadAfter, tc.wantSuspect, tc.wantDead)
		}
	}
}
