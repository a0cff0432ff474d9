package engine

import (
	"fmt"
	"net"
	"testing"
	"time"
)

func fastDetection(o Options) Options {
	o.Heartbeat = 20 * time.Millisecond
	o.SuspectAfter = 100 * time.Millisecond
	o.DeadAfter = 200 * time.Millisecond
	return o
}

func TestFailureDetectionAndRestart(t *testing.T) {
	p := freePorts(t, 2)
	a := startNode(t, fastDetection(unicastOptions(p[0], p[1])))
	ev := newEventLog(a)
	ob := fastDetection(unicastOptions(p[1], p[0]))
	ob.NodeID = 0xB0B
	b := startNode(t, ob)
	waitFor(t, 5*time.Second, "a to see b", func() bool { return aliveCount(a) == 1 })
	firstEpoch := b.Epoch()

	killed := time.Now()
	if err := b.Abort(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "b suspected", func() bool { return ev.has(EventSuspect, 0xB0B) })
	waitFor(t, 5*time.Second, "b dead", func() bool { return ev.has(EventDead, 0xB0B) })
	detect := time.Since(killed)
	if detect < ob.DeadAfter/2 {
		t.Errorf("declared dead after %v, before DeadAfter %v could pass", detect, ob.DeadAfter)
	}
	t.Logf("dead detected %v after abort (DeadAfter %v)", detect, ob.DeadAfter)
	if m := a.Members(); len(m) != 1 || m[0].State != StateDead {
		t.Fatalf("members after death: %+v", m)
	}

	// Restart with the same id and port: rejoins with a higher epoch.
	joinsBefore := countEvents(ev, EventJoin, 0xB0B)
	b2 := startNode(t, ob)
	if b2.Epoch() <= firstEpoch {
		t.Fatalf("restart epoch %d not above %d", b2.Epoch(), firstEpoch)
	}
	waitFor(t, 5*time.Second, "b rejoined", func() bool { return countEvents(ev, EventJoin, 0xB0B) > joinsBefore })
	m := a.Members()
	if len(m) != 1 || m[0].State != StateAlive || m[0].Epoch != b2.Epoch() {
		t.Fatalf("after restart: %+v", m)
	}
	// It receives new invalidations.
	lb := newKeyLog(b2)
	waitFor(t, 5*time.Second, "b2 to see a", func() bool { return aliveCount(b2) == 1 })
	a.Invalidate("after-restart")
	waitFor(t, 5*time.Second, "delivery to restarted node", func() bool { return lb.count("after-restart") == 1 })
}

func countEvents(l *eventLog, typ EventType, id uint64) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := 0
	for _, e := range l.events {
		if e.Type == typ && e.Member.ID == id {
			c++
		}
	}
	return c
}

func TestGracefulLeaveSeenAtOnce(t *testing.T) {
	p := freePorts(t, 2)
	o := unicastOptions(p[0], p[1])
	o.Heartbeat = 50 * time.Millisecond
	o.SuspectAfter = 5 * time.Second // far beyond the wait below
	o.DeadAfter = 10 * time.Second
	a := startNode(t, o)
	ev := newEventLog(a)
	ob := unicastOptions(p[1], p[0])
	ob.Heartbeat, ob.SuspectAfter, ob.DeadAfter = o.Heartbeat, o.SuspectAfter, o.DeadAfter
	b := startNode(t, ob)
	// Both ways: b says goodbye to the members it has validated, and under
	// load a may list b before b has validated a (then b's LEAVE goes to
	// no one, as seen in CI).
	waitFor(t, 5*time.Second, "a and b to see each other", func() bool { return aliveCount(a) == 1 && aliveCount(b) == 1 })
	b.Close()
	waitFor(t, 2*time.Second, "leave", func() bool { return ev.has(EventLeave, b.ID()) })
	if m := a.Members(); len(m) != 1 || m[0].State != StateLeft {
		t.Fatalf("members after leave: %+v", m)
	}
}

func TestMulticastDiscoveryOnLoopback(t *testing.T) {
	p := freePorts(t, 4)
	group := fmt.Sprintf("239.77.%d.%d", p[3]%250, p[2]%250+1)
	var nodes []*Node
	var logs []*keyLog
	for i := 0; i < 3; i++ {
		o := Options{
			Port:        p[i],
			Group:       group,
			GroupPort:   p[3],
			Interface:   "lo", // never the default interface
			Heartbeat:   30 * time.Millisecond,
			Cluster:     "mcast-test",
			Logger:      quietLogger,
			PublishRing: 1 << 16,
			RecvBuffer:  1 << 20,
			SendBuffer:  1 << 20,
		}
		n := startNode(t, o)
		if got := n.Addr().Addr(); !got.IsLoopback() {
			t.Fatalf("advertised %v on lo", got)
		}
		nodes = append(nodes, n)
		logs = append(logs, newKeyLog(n))
	}
	for _, n := range nodes {
		waitFor(t, 5*time.Second, "multicast discovery", func() bool { return aliveCount(n) == 2 })
	}
	// Once every member was heard through the group, data goes once to the
	// group rather than to each member.
	waitFor(t, 5*time.Second, "all-multicast view", func() bool {
		return nodes[0].members.view.Load().allMulticast
	})
	// The origin's choice: the group, once, and no member directly.
	if d := nodes[0].destinations(nodes[0].members.view.Load(), nodes[0].ID(), nil); len(d) != 1 || d[0] != nodes[0].group {
		t.Fatalf("destinations of a data frame: %v, want only the group %v", d, nodes[0].group)
	}
	var before [3]Stats
	for i, n := range nodes {
		before[i] = n.Stats()
	}
	nodes[0].Invalidate("mc-key")
	for _, l := range logs[1:] {
		waitFor(t, 5*time.Second, "multicast delivery", func() bool { return l.count("mc-key") == 1 })
	}
	if logs[0].count("mc-key") != 0 {
		t.Fatal("origin applied its own multicast frame")
	}
	// What arrived: one DATA frame at each member and no second copy (a
	// unicast copy beside the group's would be a duplicate).
	for i, n := range nodes[1:] {
		s := n.Stats()
		if data, dups := s.DataFrames-before[i+1].DataFrames, s.Duplicates-before[i+1].Duplicates; data != 1 || dups != 0 {
			t.Errorf("member %d: %d DATA frames and %d duplicates for one invalidation, want 1 and 0", i+1, data, dups)
		}
	}
	if s := nodes[0].Stats(); s.RecordsSent-before[0].RecordsSent != 1 || s.Drops[DropOwn] == 0 {
		t.Errorf("origin: %d records sent, %d own frames dropped; want 1 record and its own multicast copy dropped by node id",
			s.RecordsSent-before[0].RecordsSent, s.Drops[DropOwn])
	}
}

func TestRelayMesh48(t *testing.T) {
	if testing.Short() {
		t.Skip("48-node mesh skipped in -short")
	}
	// Heartbeats go to every member each round (N² datagrams): under
	// -race on a loaded 2-core machine 48 nodes did not converge within
	// 60 s, so the race build runs half the mesh (still relaying, with
	// DirectLimit 4).
	N := 48
	if raceEnabled {
		N = 24
	}
	nodes := make([]*Node, N)
	logs := make([]*keyLog, N)
	for i := range nodes {
		// Kernel-chosen ports: N reserved-then-released ports would race
		// with other packages' tests running alongside.
		o := unicastOptions(AnyPort)
		if i > 0 {
			o.Peers = []string{nodes[0].Addr().String()}
		}
		o.Heartbeat = 100 * time.Millisecond
		o.SuspectAfter = 5 * time.Second // not under test; the machine may be loaded
		o.DeadAfter = 10 * time.Second
		o.DirectLimit = 4 // force relaying
		o.Fanout = 3
		o.PublishRing = 1 << 14
		o.RecvBuffer, o.SendBuffer = 256<<10, 256<<10
		nodes[i] = startNode(t, o)
		logs[i] = newKeyLog(nodes[i])
	}
	// One deadline for the whole mesh, generous for a loaded machine.
	deadline := time.Now().Add(60 * time.Second)
	for i, n := range nodes {
		waitFor(t, time.Until(deadline), fmt.Sprintf("node %d to know all", i), func() bool { return aliveCount(n) == N-1 })
	}
	const perPublisher = 20
	publishers := []int{0, 17, N - 1}
	for _, pi := range publishers {
		for k := 0; k < perPublisher; k++ {
			if err := nodes[pi].Invalidate(fmt.Sprintf("n%d-k%d", pi, k)); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i, l := range logs {
		want := len(publishers) * perPublisher
		for _, pi := range publishers {
			if pi == i {
				want -= perPublisher
			}
		}
		waitFor(t, 10*time.Second, fmt.Sprintf("node %d coverage", i), func() bool { return l.distinct() == want })
	}
	var applied, dups, relayed, rtxSent, rtxApplied uint64
	for _, n := range nodes {
		s := n.Stats()
		applied += s.DataFrames
		dups += s.Duplicates
		relayed += s.Relayed
		rtxSent += s.Retransmitted
		rtxApplied += s.RetransmitsReceived
	}
	redundancy := relayRedundancy(applied, dups, rtxSent, rtxApplied)
	t.Logf("%d nodes: data frames applied %d, duplicates %d, relayed %d, retransmitted %d (%d applied); relay redundancy %.3f, with repairs %.3f",
		N, applied, dups, relayed, rtxSent, rtxApplied, redundancy, float64(applied+dups)/float64(applied))
	if relayed == 0 {
		t.Fatal("no frame was relayed with DirectLimit 4")
	}
	// Measured 1.000; a flood through Fanout 3 would be near 3.
	if redundancy > 1.5 {
		t.Fatalf("relay redundancy %.3f, want <= 1.5", redundancy)
	}
	if least := uint64(len(publishers) * (N - 1)); applied < least { // every publisher's frames, at every other node
		t.Fatalf("%d DATA frames applied, want at least %d", applied, least)
	}
}

func TestDuplicateFramesAppliedOnce(t *testing.T) {
	p := freePorts(t, 2)
	a := startNode(t, unicastOptions(p[0]))
	l := newKeyLog(a)
	// A raw socket plays a peer that sends the same frame three times.
	conn, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(a.LocalAddr()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	frame := testDataFrame(a.cfg.cluster, 0xFEED, 1, 7, "dup-key")
	for i := 0; i < 3; i++ {
		if _, err := conn.Write(frame); err != nil {
			t.Fatal(err)
		}
	}
	fence := testDataFrame(a.cfg.cluster, 0xFEED, 1, 8, "fence")
	conn.Write(fence)
	waitFor(t, 5*time.Second, "fence", func() bool { return l.count("fence") == 1 })
	if c := l.count("dup-key"); c != 1 {
		t.Fatalf("dup-key applied %d times", c)
	}
	if d := a.Stats().Duplicates; d != 2 {
		t.Fatalf("duplicates counted %d, want 2", d)
	}
}

// relayRedundancy is copies of DATA frames received per first copy, not
// counting the copies repair sent: every retransmission not applied is at
// most one duplicate, so those are taken off. The relay tree alone gives
// 1; a flood through Fanout f gives about f. (Repair traffic on a loaded
// machine is bounded by the repair tests, not here: under load a mesh
// NACKs relay-reordered frames and the total copies per frame reached 4.6
// in a 48-node mesh during a full -race run.)
func relayRedundancy(data, dups, rtxSent, rtxApplied uint64) float64 {
	repairDups := rtxSent - min(rtxApplied, rtxSent)
	return float64(data+dups-min(dups, repairDups)) / float64(data)
}
