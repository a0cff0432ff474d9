package engine

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/warpmesh/warpmesh/internal/testdns"
)

func TestParseSeed(t *testing.T) {
	for _, tc := range []struct {
		in   string
		kind seedKind
		host string
		port uint16
		err  bool
	}{
		{in: "10.0.0.1:7946", kind: seedLiteral, port: 7946},
		{in: "[fd00::1]:7946", kind: seedLiteral, port: 7946},
		{in: "[::ffff:10.0.0.1]:7946", kind: seedLiteral, port: 7946},
		{in: "warpmesh.default.svc.cluster.local:7946", kind: seedHost, host: "warpmesh.default.svc.cluster.local", port: 7946},
		{in: "dns+tasks.cache:7946", kind: seedHost, host: "tasks.cache", port: 7946},
		{in: "dnssrv+_warpmesh._udp.warpmesh.default.svc", kind: seedSRV, host: "_warpmesh._udp.warpmesh.default.svc"},
		{in: "_warpmesh._udp.mesh.test.", kind: seedSRV, host: "_warpmesh._udp.mesh.test."},
		{in: "dnssrv+", err: true},
		{in: "dnssrv+_a._udp.x:7946", err: true},
		{in: "_warpmesh._udp", err: true},
		{in: "mesh.test", err: true},
		{in: "mesh.test:0", err: true},
		{in: "mesh.test:70000", err: true},
		{in: ":7946", err: true},
		{in: "10.0.0.1:0", err: true},
		{in: "fd00::1:7946", err: true},
	} {
		s, err := parseSeed(tc.in)
		if tc.err {
			if err == nil {
				t.Errorf("parseSeed(%q) = %+v, want an error", tc.in, s)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseSeed(%q): %v", tc.in, err)
			continue
		}
		if s.kind != tc.kind || s.host != tc.host || (s.kind == seedHost && s.port != tc.port) ||
			(s.kind == seedLiteral && s.literal.Port() != tc.port) {
			t.Errorf("parseSeed(%q) = %+v, want kind %d host %q port %d", tc.in, s, tc.kind, tc.host, tc.port)
		}
	}
}

func TestOptionsSeedsAndGroups(t *testing.T) {
	for _, tc := range []struct {
		name   string
		o      Options
		option string // "" = valid
	}{
		{"srv seed", Options{UnicastOnly: true, BindAddr: "127.0.0.1", Peers: []string{"dnssrv+_w._udp.mesh.test"}}, ""},
		{"bad seed", Options{UnicastOnly: true, BindAddr: "127.0.0.1", Peers: []string{"mesh.test"}}, "Peers"},
		{"v6 group dual stack", Options{BindAddr: "::", Group: "ff12::7946", Interface: "lo", GroupPort: 41000, Port: 41001}, ""},
		{"v6 site-local group", Options{BindAddr: "::", Group: "ff15::1:7946", Interface: "lo", GroupPort: 41000, Port: 41001}, ""},
		{"v6 interface-local group", Options{BindAddr: "::", Group: "ff11::1", Interface: "lo", GroupPort: 41000, Port: 41001}, "Group"},
		{"v6 group on v4 bind", Options{BindAddr: "0.0.0.0", Group: "ff12::7946", Interface: "lo"}, "Group"},
		{"v4 group on v6 bind", Options{BindAddr: "::1", Group: "239.0.0.1", Interface: "lo", GroupPort: 41000, Port: 41001}, "Group"},
		{"not multicast", Options{BindAddr: "::", Group: "fd00::1", Interface: "lo"}, "Group"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.o.resolve()
			if tc.option == "" {
				if err != nil {
					t.Fatalf("resolve: %v", err)
				}
				return
			}
			var oe *OptionError
			if !errors.As(err, &oe) || oe.Option != tc.option {
				t.Fatalf("resolve = %v, want an error naming %s", err, tc.option)
			}
		})
	}
}

func TestAdvertiseFamily(t *testing.T) {
	// A v6 literal seed with no BindAddr: dual stack, advertising ::1.
	c, err := Options{UnicastOnly: true, Port: 41002, Peers: []string{"[::1]:41003"}}.resolve()
	if err != nil {
		t.Fatal(err)
	}
	if c.bind != netip.IPv6Unspecified() || c.advertise != netip.MustParseAddrPort("[::1]:41002") {
		t.Fatalf("bind %v advertise %v, want :: and [::1]:41002", c.bind, c.advertise)
	}
	// Bound to :: with an IPv6 group and no seeds: the default group on lo
	// advertises lo's IPv6 address.
	c, err = Options{BindAddr: "::", Interface: "lo", Group: "ff12::7946", Port: 41002, GroupPort: 41004}.resolve()
	if err != nil {
		t.Fatal(err)
	}
	if !c.advertise.Addr().Is6() || !c.group.Is6() {
		t.Fatalf("advertise %v group %v, want both IPv6", c.advertise, c.group)
	}
	// Bound to :: with no group: the default group follows the advertised
	// family.
	c, err = Options{BindAddr: "::", Interface: "lo", Peers: []string{"[::1]:41005"}, Group: "", Port: 41002, GroupPort: 41004}.resolve()
	if err != nil {
		t.Fatal(err)
	}
	if c.group.IsValid() {
		t.Fatalf("group %v with Peers and no Group: want unicast only", c.group)
	}
}

// dnsOptions is unicastOptions for a node bound to addr:port whose only
// seed is peer.
func dnsOptions(dns *testdns.Server, addr string, port int, peer string) Options {
	o := unicastOptions(port)
	o.BindAddr = addr
	o.Peers = []string{peer}
	o.Resolver = dns.Resolver()
	return o
}

func loopback(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{127, 0, byte(i / 250), byte(i%250 + 2)})
}

func TestSeedResolverAnswers(t *testing.T) {
	dns := testdns.Start(t, "127.0.0.53:0")
	port := freePorts(t, 1)[0]
	self := netip.MustParseAddr("127.0.0.2")
	dns.SetHost("pods.mesh.test", self, netip.MustParseAddr("127.0.0.3"), netip.MustParseAddr("fd00::3"))
	dns.SetSRV("_w._udp.mesh.test", testdns.SRV{Target: "a.mesh.test", Port: 9001}, testdns.SRV{Target: "b.mesh.test", Port: 9002})
	dns.SetHost("a.mesh.test", netip.MustParseAddr("127.0.0.4"))
	dns.SetHost("b.mesh.test", netip.MustParseAddr("127.0.0.5"), netip.MustParseAddr("127.0.0.6"))

	o := dnsOptions(dns, self.String(), port, fmt.Sprintf("pods.mesh.test:%d", port))
	o.Peers = append(o.Peers, "dnssrv+_w._udp.mesh.test", "127.0.0.9:9009")
	o.Heartbeat = 20 * time.Millisecond
	c, err := o.resolve()
	if err != nil {
		t.Fatal(err)
	}
	var r seedResolver
	r.init(c, []netip.AddrPort{c.advertise}, func(msg string, args ...any) { t.Log(append([]any{msg}, args...)...) })
	r.resolveAll(t.Context())
	got, _ := r.snapshot()
	want := []netip.AddrPort{
		netip.AddrPortFrom(netip.MustParseAddr("127.0.0.3"), uint16(port)), // not itself, not IPv6 on an IPv4 socket
		netip.MustParseAddrPort("127.0.0.4:9001"),
		netip.MustParseAddrPort("127.0.0.5:9002"),
		netip.MustParseAddrPort("127.0.0.6:9002"),
	}
	if !slices.Equal(got, want) {
		t.Fatalf("resolved %v, want %v", got, want)
	}
	if !r.news() || r.news() {
		t.Fatal("news: want true once after the first answer, then false")
	}
	// Literal seeds come every round; resolved ones a window at a time.
	round := r.next(nil)
	if round[0] != netip.MustParseAddrPort("127.0.0.9:9009") || len(round) != 1+min(len(want), seedsPerRound) {
		t.Fatalf("round = %v", round)
	}

	// A failing DNS keeps the last good answer; a silent one too, and
	// each round stays bounded by the lookup timeout.
	for _, mode := range []testdns.Mode{testdns.ServFail, testdns.Silent} {
		dns.SetMode(mode)
		start := time.Now()
		r.resolveAll(t.Context())
		if d := time.Since(start); d > 3*lookupTimeout(o.Heartbeat) {
			t.Fatalf("mode %d: a round took %v, lookup timeout %v", mode, d, lookupTimeout(o.Heartbeat))
		}
		if got, _ := r.snapshot(); !slices.Equal(got, want) {
			t.Fatalf("mode %d: resolved %v, want the last good %v", mode, got, want)
		}
	}
	// Back up with a new answer: it replaces the old one.
	dns.SetMode(testdns.Answer)
	dns.SetHost("pods.mesh.test", netip.MustParseAddr("127.0.0.7"))
	dns.SetSRV("_w._udp.mesh.test", testdns.SRV{Target: "c.mesh.test", Port: 9003})
	dns.SetHost("c.mesh.test", netip.MustParseAddr("127.0.0.8"))
	r.resolveAll(t.Context())
	got, _ = r.snapshot()
	want = []netip.AddrPort{netip.AddrPortFrom(netip.MustParseAddr("127.0.0.7"), uint16(port)), netip.MustParseAddrPort("127.0.0.8:9003")}
	if !slices.Equal(got, want) || !r.news() {
		t.Fatalf("after recovery resolved %v (news %v), want %v", got, r.news(), want)
	}
}

// TestSeedWindow: a name with hundreds of addresses is contacted a few at a
// time, every address within len/seedsPerRound rounds.
func TestSeedWindow(t *testing.T) {
	r := seedResolver{cursor: 7}
	for i := range 300 {
		r.merged = append(r.merged, netip.AddrPortFrom(loopback(i), 7946))
	}
	seen := map[netip.AddrPort]bool{}
	rounds := (len(r.merged) + seedsPerRound - 1) / seedsPerRound
	for range rounds {
		got := r.next(nil)
		if len(got) > seedsPerRound {
			t.Fatalf("a round contacts %d seeds, want at most %d", len(got), seedsPerRound)
		}
		for _, a := range got {
			seen[a] = true
		}
	}
	if len(seen) != len(r.merged) {
		t.Fatalf("%d rounds reached %d of %d addresses", rounds, len(seen), len(r.merged))
	}
}

// dnsMesh starts nodes at addrs (same port), each seeded only by name.
func dnsMesh(t *testing.T, dns *testdns.Server, port int, name string, addrs []netip.Addr, tune func(*Options)) []*Node {
	t.Helper()
	var nodes []*Node
	for _, a := range addrs {
		o := dnsOptions(dns, a.String(), port, fmt.Sprintf("%s:%d", name, port))
		if tune != nil {
			tune(&o)
		}
		nodes = append(nodes, startNode(t, o))
	}
	return nodes
}

// wholeMesh waits until every node sees every other alive and is ready.
func wholeMesh(t *testing.T, d time.Duration, what string, nodes []*Node) {
	t.Helper()
	waitFor(t, d, what, func() bool {
		for _, n := range nodes {
			if aliveCount(n) < len(nodes)-1 || !n.Ready() {
				return false
			}
		}
		return true
	})
	for _, n := range nodes {
		for _, m := range n.Members() {
			if m.Addr == n.Addr() {
				t.Fatalf("%v lists itself as a member", n.Addr())
			}
		}
	}
}

// TestDNSRollingRestart: five "pods" behind one name are replaced one by
// one by pods at new addresses, the name always listing the current pods
// (publishNotReadyAddresses); the mesh stays whole throughout and ends
// made of the new pods only.
func TestDNSRollingRestart(t *testing.T) {
	dns := testdns.Start(t, "127.0.0.53:0")
	port := freePorts(t, 1)[0]
	const pods = 5
	var addrs []netip.Addr
	for i := range pods {
		addrs = append(addrs, loopback(10+i))
	}
	dns.SetHost("pods.mesh.test", addrs...)
	nodes := dnsMesh(t, dns, port, "pods.mesh.test", addrs, nil)
	wholeMesh(t, 10*time.Second, "the first generation to form a mesh", nodes)

	for i := range pods {
		// The new pod is listed as soon as it exists, then the old one
		// stops (a graceful leave) and is removed from the name.
		addrs = append(addrs, loopback(100+i))
		dns.SetHost("pods.mesh.test", addrs...)
		nodes = append(nodes, dnsMesh(t, dns, port, "pods.mesh.test", addrs[len(addrs)-1:], nil)...)
		if err := nodes[0].Close(); err != nil {
			t.Fatal(err)
		}
		nodes, addrs = nodes[1:], addrs[1:]
		dns.SetHost("pods.mesh.test", addrs...)
		wholeMesh(t, 10*time.Second, fmt.Sprintf("the mesh whole after replacing pod %d", i), nodes)
	}
	for _, n := range nodes {
		if a := n.Addr().Addr(); a.As4()[2] != 0 || a.As4()[3] < 100 {
			t.Fatalf("a first-generation node %v is still running", a)
		}
	}
	// Every address changed; publish through the new mesh.
	logs := make([]*keyLog, len(nodes))
	for i, n := range nodes {
		logs[i] = newKeyLog(n)
	}
	if err := nodes[0].Invalidate("after-roll"); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(nodes); i++ {
		waitFor(t, 5*time.Second, "the invalidation at every new pod", func() bool { return logs[i].count("after-roll") == 1 })
	}
}

// TestDNSFiftyAddresses: fifty nodes whose only configuration is one name
// with fifty A records form one mesh, each contacting a few seeds a round.
func TestDNSFiftyAddresses(t *testing.T) {
	if testing.Short() {
		t.Skip("fifty nodes: not in -short")
	}
	dns := testdns.Start(t, "127.0.0.53:0")
	port := freePorts(t, 1)[0]
	const pods = 50
	var addrs []netip.Addr
	for i := range pods {
		addrs = append(addrs, loopback(20+i))
	}
	dns.SetHost("many.mesh.test", addrs...)
	start := time.Now()
	nodes := dnsMesh(t, dns, port, "many.mesh.test", addrs, func(o *Options) {
		o.Heartbeat = 300 * time.Millisecond
		o.SuspectAfter = 10 * time.Second // fifty nodes on a loaded 2-core machine under -race
		o.DeadAfter = 20 * time.Second
		o.RecvBuffer, o.SendBuffer = 128<<10, 128<<10
		o.RetransmitBuffer = 64 << 10
		o.PublishRing = 4096
		o.BatchSize = 16
	})
	t.Logf("fifty nodes started in %v", time.Since(start))
	// Membership only: readiness of fifty nodes (a JOIN exchange with
	// every origin) is the join tests' business, and slow under -race.
	waitFor(t, 60*time.Second, "fifty nodes to know each other", func() bool {
		for _, n := range nodes {
			if aliveCount(n) < pods-1 {
				return false
			}
		}
		return true
	})
	t.Logf("every node knows every other %v after start", time.Since(start))
	for _, n := range nodes {
		for _, m := range n.Members() {
			if m.Addr == n.Addr() {
				t.Fatalf("%v lists itself as a member", n.Addr())
			}
		}
	}
	closeAll(nodes)
}

// closeAll closes nodes concurrently (each Close waits for its goroutines;
// one after another, fifty take long).
func closeAll(nodes []*Node) {
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Go(func() { n.Close() })
	}
	wg.Wait()
}

// TestDNSLookupFailing: while DNS fails, running nodes keep their seeds
// and a new node cannot find the mesh; once DNS answers again it joins.
func TestDNSLookupFailing(t *testing.T) {
	dns := testdns.Start(t, "127.0.0.53:0")
	port := freePorts(t, 1)[0]
	addrs := []netip.Addr{loopback(150), loopback(151), loopback(152)}
	dns.SetHost("flaky.mesh.test", addrs[:2]...)
	nodes := dnsMesh(t, dns, port, "flaky.mesh.test", addrs[:2], nil)
	wholeMesh(t, 10*time.Second, "two nodes to meet", nodes)

	dns.SetMode(testdns.ServFail)
	before := dns.Queries()
	late := dnsMesh(t, dns, port, "flaky.mesh.test", addrs[2:], nil)[0]
	waitFor(t, 5*time.Second, "lookups to keep failing for several rounds", func() bool { return dns.Queries() > before+20 })
	if aliveCount(late) != 0 {
		t.Fatalf("a node that cannot resolve its seed found %d members", aliveCount(late))
	}
	for _, n := range nodes {
		if got, _ := n.seedRes.snapshot(); len(got) != 1 {
			t.Fatalf("%v: seeds during the outage %v, want the last good answer (the other node)", n.Addr(), got)
		}
	}
	dns.SetHost("flaky.mesh.test", addrs...)
	dns.SetMode(testdns.Answer)
	wholeMesh(t, 10*time.Second, "the late node to join once DNS answers", append(nodes, late))
}

// TestDNSSRVIPv6: two nodes on ::1 with kernel-chosen ports, found through
// SRV records whose targets have AAAA records only.
func TestDNSSRVIPv6(t *testing.T) {
	dns := testdns.Start(t, "127.0.0.53:0")
	var nodes []*Node
	for range 3 {
		o := unicastOptions(AnyPort)
		o.BindAddr = "::1"
		o.Peers = []string{"_warpmesh._udp.v6.mesh.test"}
		o.Resolver = dns.Resolver()
		n, err := New(o)
		if err != nil {
			t.Skipf("no IPv6 loopback here: %v", err)
		}
		t.Cleanup(func() { n.Close() })
		nodes = append(nodes, n)
		var recs []testdns.SRV
		for i, n := range nodes {
			name := fmt.Sprintf("pod%d.v6.mesh.test", i)
			dns.SetHost(name, n.Addr().Addr())
			recs = append(recs, testdns.SRV{Target: name, Port: n.Addr().Port()})
		}
		dns.SetSRV("_warpmesh._udp.v6.mesh.test", recs...)
	}
	wholeMesh(t, 10*time.Second, "three IPv6 nodes found by SRV", nodes)
	for _, m := range nodes[0].Members() {
		if !m.Addr.Addr().Is6() {
			t.Fatalf("member %v is not IPv6", m.Addr)
		}
	}
}

// TestDualStackLoopback: three nodes bound to :: (dual stack), two
// advertising IPv4 and one IPv6, found through SRV targets with A or AAAA
// records, form one mesh.
func TestDualStackLoopback(t *testing.T) {
	dns := testdns.Start(t, "127.0.0.53:0")
	var nodes []*Node
	var recs []testdns.SRV
	for i, adv := range []string{"127.0.0.1", "::1", "127.0.0.1"} {
		o := unicastOptions(AnyPort)
		o.BindAddr = "::"
		o.AdvertiseAddr = adv
		o.Peers = []string{"dnssrv+_warpmesh._udp.dual.mesh.test"}
		o.Resolver = dns.Resolver()
		n, err := New(o)
		if err != nil {
			t.Skipf("no dual-stack loopback here: %v", err)
		}
		t.Cleanup(func() { n.Close() })
		nodes = append(nodes, n)
		name := fmt.Sprintf("pod%d.dual.mesh.test", i)
		dns.SetHost(name, n.Addr().Addr())
		recs = append(recs, testdns.SRV{Target: name, Port: n.Addr().Port()})
		dns.SetSRV("_warpmesh._udp.dual.mesh.test", recs...)
	}
	wholeMesh(t, 10*time.Second, "three dual-stack nodes, two families", nodes)
	fams := map[bool]int{}
	for _, m := range nodes[0].Members() {
		fams[m.Addr.Addr().Is6()]++
	}
	if fams[true] != 1 || fams[false] != 1 {
		t.Fatalf("node 0's members by family (IPv6: count) %v, want one of each", fams)
	}
}

// TestDualStackMulticastOnLoopback: nodes bound to :: join an IPv4 group
// (IPv4 multicast on an IPv6 socket) and meet through it alone; data then
// goes once to the group.
func TestDualStackMulticastOnLoopback(t *testing.T) {
	p := freePorts(t, 3)
	group := fmt.Sprintf("239.78.%d.%d", p[2]%250, p[1]%250+1)
	var nodes []*Node
	for i := range 2 {
		n := startNode(t, Options{
			Port: p[i], BindAddr: "::", Group: group, GroupPort: p[2], Interface: "lo",
			Heartbeat: 30 * time.Millisecond, Cluster: "dual-mc", Logger: quietLogger,
			PublishRing: 1 << 16, RecvBuffer: 1 << 20, SendBuffer: 1 << 20,
		})
		if a := n.Addr().Addr(); a != netip.MustParseAddr("127.0.0.1") {
			t.Fatalf("dual-stack node on lo with an IPv4 group advertises %v, want 127.0.0.1", a)
		}
		nodes = append(nodes, n)
	}
	for _, n := range nodes {
		waitFor(t, 5*time.Second, "discovery through the IPv4 group on dual-stack sockets", func() bool { return aliveCount(n) == 1 })
	}
	waitFor(t, 5*time.Second, "the all-multicast view", func() bool { return nodes[0].members.view.Load().allMulticast })
}

// TestSeedResolverNeverSelfOnWildcard: bound to a wildcard address, the
// node is every local address on its port, whatever it advertises: a name
// listing the node's own pod IP never makes it a seed of itself.
func TestSeedResolverNeverSelfOnWildcard(t *testing.T) {
	dns := testdns.Start(t, "127.0.0.53:0")
	port := freePorts(t, 1)[0]
	dns.SetHost("self.mesh.test", netip.MustParseAddr("127.0.0.1"))
	dns.SetSRV("_w._udp.self.mesh.test", testdns.SRV{Target: "self.mesh.test", Port: uint16(port)},
		testdns.SRV{Target: "self.mesh.test", Port: uint16(port + 1)})
	o := unicastOptions(port)
	o.BindAddr = "0.0.0.0"
	o.AdvertiseAddr = "127.0.0.9" // what the others are told, not what DNS lists
	o.Peers = []string{fmt.Sprintf("self.mesh.test:%d", port), "dnssrv+_w._udp.self.mesh.test"}
	o.Resolver = dns.Resolver()
	c, err := o.resolve()
	if err != nil {
		t.Fatal(err)
	}
	var r seedResolver
	r.init(c, []netip.AddrPort{c.advertise}, func(string, ...any) {})
	r.resolveAll(t.Context())
	got, _ := r.snapshot()
	want := []netip.AddrPort{netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port+1))}
	if !slices.Equal(got, want) {
		t.Fatalf("resolved %v, want %v (never this node's own address)", got, want)
	}
}
