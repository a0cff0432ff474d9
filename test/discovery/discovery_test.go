package discovery

import (
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/warpmesh/warpmesh/engine"
	"github.com/warpmesh/warpmesh/internal/testdns"
	"github.com/warpmesh/warpmesh/internal/testnet"
)

const port = 7946 // every pod has its own namespace: one port for all, as in Kubernetes

// longEnv set to anything runs the longer variants (more pods).
const longEnv = "WARPMESH_DISCOVERY_LONG"

// podCount returns n, or long with longEnv set.
func podCount(n, long int) int {
	if os.Getenv(longEnv) != "" {
		return long
	}
	return n
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// podOptions is what a pod's node gets: one seed, small buffers, a quick
// heartbeat. BindAddr and AdvertiseAddr are left to the engine.
func podOptions(dns *testdns.Server, peer string) engine.Options {
	return engine.Options{
		Port:        port,
		Peers:       []string{peer},
		Resolver:    dns.Resolver(),
		Heartbeat:   50 * time.Millisecond,
		Cluster:     "discovery",
		Logger:      quiet,
		PublishRing: 1 << 16,
		RecvBuffer:  1 << 20,
		SendBuffer:  1 << 20,
	}
}

// whole waits until every node sees every other alive and is ready (what
// /readyz reports to a readiness probe), then checks that
// no node lists itself and that every member address is of family want6.
func whole(t *testing.T, what string, nodes []*engine.Node, want6 bool) {
	t.Helper()
	testnet.WaitFor(t, 15*time.Second, what, func() bool {
		for _, n := range nodes {
			if n.Stats().MembersAlive != len(nodes)-1 || !n.Ready() {
				return false
			}
		}
		return true
	})
	for _, n := range nodes {
		if n.Addr().Addr().Is6() != want6 {
			t.Fatalf("node advertises %v, want IPv6=%v", n.Addr(), want6)
		}
		for _, m := range n.Members() {
			if m.Addr == n.Addr() {
				t.Fatalf("%v lists itself", n.Addr())
			}
			if (m.State == engine.StateAlive) && m.Addr.Addr().Is6() != want6 {
				t.Fatalf("%v: member %v, want IPv6=%v", n.Addr(), m.Addr, want6)
			}
		}
	}
}

// publishReaches publishes a key at nodes[0] and waits for every other
// node to apply it.
func publishReaches(t *testing.T, nodes []*engine.Node, key string) {
	t.Helper()
	var mu sync.Mutex
	got := map[uint64]bool{}
	for _, n := range nodes[1:] {
		id := n.ID()
		n.OnInvalidate(func(inv engine.Invalidation) {
			if string(inv.Key) == key {
				mu.Lock()
				got[id] = true
				mu.Unlock()
			}
		})
	}
	if err := nodes[0].Invalidate(key); err != nil {
		t.Fatal(err)
	}
	testnet.WaitFor(t, 10*time.Second, "the invalidation at every pod", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == len(nodes)-1
	})
}

func addrsOf(pods []*pod) []netip.Addr {
	var out []netip.Addr
	for _, p := range pods {
		out = append(out, p.addr...)
	}
	return out
}

// TestRollingRestartPods: four pods (twelve with longEnv) behind a headless-service name are
// replaced one by one by pods in new namespaces at new addresses; the name
// lists every existing pod, ready or not (publishNotReadyAddresses), and
// the mesh is whole after every step.
func TestRollingRestartPods(t *testing.T) {
	net := newNetwork(t, true, false)
	dns := testdns.Start(t, "127.0.0.53:0")
	const name = "warpmesh.default.svc.cluster.test"
	var pods []*pod
	var nodes []*engine.Node
	size := podCount(4, 12)
	for range size {
		pods = append(pods, net.addPod())
	}
	dns.SetHost(name, addrsOf(pods)...)
	for _, p := range pods {
		nodes = append(nodes, startIn(t, p.ns, podOptions(dns, fmt.Sprintf("%s:%d", name, port))))
	}
	whole(t, "the pods to form a mesh", nodes, false)
	for i := range size {
		np := net.addPod()
		pods = append(pods, np)
		dns.SetHost(name, addrsOf(pods)...)
		nodes = append(nodes, startIn(t, np.ns, podOptions(dns, fmt.Sprintf("%s:%d", name, port))))
		if err := nodes[0].Close(); err != nil { // SIGTERM: a graceful leave
			t.Fatal(err)
		}
		net.remove(pods[0])
		pods, nodes = pods[1:], nodes[1:]
		dns.SetHost(name, addrsOf(pods)...)
		whole(t, fmt.Sprintf("the mesh whole after replacing pod %d", i+1), nodes, false)
	}
	publishReaches(t, nodes, "after-rolling-restart")
}

// TestIPv6OnlyPods: pods with no IPv4 address and nothing configured but a
// name with AAAA records bind ::, advertise IPv6 and form a mesh.
func TestIPv6OnlyPods(t *testing.T) {
	net := newNetwork(t, false, true)
	dns := testdns.Start(t, "127.0.0.53:0")
	const name = "v6only.mesh.test"
	var pods []*pod
	for range podCount(3, 10) {
		pods = append(pods, net.addPod())
	}
	dns.SetHost(name, addrsOf(pods)...)
	var nodes []*engine.Node
	for _, p := range pods {
		nodes = append(nodes, startIn(t, p.ns, podOptions(dns, fmt.Sprintf("%s:%d", name, port))))
	}
	whole(t, "the IPv6-only pods to form a mesh", nodes, true)
	publishReaches(t, nodes, "v6-only")
}

// TestDualStackPods: pods with IPv4 and IPv6 bound to ::, the name
// answering A and AAAA for each: one mesh, each pod advertising IPv4 (the
// family every peer has) and never seeding itself through either family.
func TestDualStackPods(t *testing.T) {
	net := newNetwork(t, true, true)
	dns := testdns.Start(t, "127.0.0.53:0")
	const name = "dual.mesh.test"
	var pods []*pod
	for range 3 {
		pods = append(pods, net.addPod())
	}
	dns.SetHost(name, addrsOf(pods)...)
	var nodes []*engine.Node
	for _, p := range pods {
		o := podOptions(dns, fmt.Sprintf("%s:%d", name, port))
		o.BindAddr = "::"
		nodes = append(nodes, startIn(t, p.ns, o))
	}
	whole(t, "three dual-stack pods to form a mesh", nodes, false)
	publishReaches(t, nodes, "dual-stack")

	// A pod that prefers IPv6 (an IPv6 literal seed) joins the same mesh
	// and is reached over IPv6.
	p6 := net.addPod()
	o := podOptions(dns, netip.AddrPortFrom(pods[0].addr[1], port).String())
	o.BindAddr = "::"
	n6 := startIn(t, p6.ns, o)
	if !n6.Addr().Addr().Is6() {
		t.Fatalf("a dual-stack pod seeded over IPv6 advertises %v", n6.Addr())
	}
	testnet.WaitFor(t, 15*time.Second, "every pod to know the IPv6 pod", func() bool {
		for _, n := range nodes {
			if n.Stats().MembersAlive != len(nodes) {
				return false
			}
		}
		return n6.Stats().MembersAlive == len(nodes)
	})
}

// TestIPv6MulticastBridge: IPv6-only pods with no seeds find each other
// through an IPv6 multicast group joined on eth0, across the bridge.
func TestIPv6MulticastBridge(t *testing.T) {
	for _, group := range []string{"ff15::7946", ""} { // site-local, then the default (ff12::7946, link-local)
		t.Run("group="+group, func(t *testing.T) {
			net := newNetwork(t, false, true)
			var nodes []*engine.Node
			for range 3 {
				p := net.addPod()
				nodes = append(nodes, startIn(t, p.ns, engine.Options{
					Port: port, Group: group, Interface: "eth0", BindAddr: "::",
					Heartbeat: 50 * time.Millisecond, Cluster: "discovery-mc", Logger: quiet,
					PublishRing: 1 << 16, RecvBuffer: 1 << 20, SendBuffer: 1 << 20,
				}))
			}
			whole(t, "three IPv6 pods to meet by multicast", nodes, true)
			publishReaches(t, nodes, "v6-multicast")
		})
	}
}

// TestSRVPods: pods whose only configuration is a Kubernetes-style SRV
// name (one record per pod, its target the pod's own A record) form a
// mesh and heal as pods are replaced at new addresses.
func TestSRVPods(t *testing.T) {
	net := newNetwork(t, true, false)
	dns := testdns.Start(t, "127.0.0.53:0")
	const srv = "_warpmesh._udp.warpmesh.default.svc.cluster.test"
	publish := func(pods []*pod) {
		var recs []testdns.SRV
		for _, p := range pods {
			a := p.addr[0].As4()
			target := fmt.Sprintf("%d-%d-%d-%d.warpmesh.default.svc.cluster.test", a[0], a[1], a[2], a[3])
			dns.SetHost(target, p.addr[0])
			recs = append(recs, testdns.SRV{Target: target, Port: port})
		}
		dns.SetSRV(srv, recs...)
	}
	var pods []*pod
	var nodes []*engine.Node
	for range 3 {
		pods = append(pods, net.addPod())
	}
	publish(pods)
	for _, p := range pods {
		nodes = append(nodes, startIn(t, p.ns, podOptions(dns, "dnssrv+"+srv)))
	}
	whole(t, "three pods found through SRV", nodes, false)
	for i := range 2 {
		np := net.addPod()
		pods = append(pods, np)
		publish(pods)
		nodes = append(nodes, startIn(t, np.ns, podOptions(dns, "dnssrv+"+srv)))
		if err := nodes[0].Close(); err != nil {
			t.Fatal(err)
		}
		net.remove(pods[0])
		pods, nodes = pods[1:], nodes[1:]
		publish(pods)
		whole(t, fmt.Sprintf("the SRV mesh whole after replacing pod %d", i+1), nodes, false)
	}
	publishReaches(t, nodes, "srv")
}
