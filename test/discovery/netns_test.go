package discovery

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/warpmesh/warpmesh/engine"
)

// netSeq numbers the networks this process makes (subnets and names).
var netSeq atomic.Int32

// network is a bridge in a namespace of its own with pods attached by veth.
type network struct {
	t      *testing.T
	prefix string // namespace names
	bridge string
	sub    int // third octet / IPv6 subnet id
	v4, v6 bool
	pods   int // pods made so far (addresses never repeat)
}

// pod is one namespace with eth0 on the bridge.
type pod struct {
	ns   string
	addr []netip.Addr // IPv4 first when it has one
}

// requireRoot skips the test unless namespaces can be made here.
func requireRoot(t *testing.T) {
	t.Helper()
	switch {
	case runtime.GOOS != "linux":
		t.Skip("discovery tests need Linux network namespaces")
	case os.Geteuid() != 0:
		t.Skip("discovery tests need root (network namespaces); CI runs them as root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("discovery tests need the ip command (iproute2)")
	}
}

// newNetwork makes an empty bridge carrying IPv4 and/or IPv6. Everything
// is deleted when the test ends, after the nodes (cleanups run last-first).
func newNetwork(t *testing.T, v4, v6 bool) *network {
	t.Helper()
	requireRoot(t)
	seq := int(netSeq.Add(1))
	n := &network{t: t, prefix: fmt.Sprintf("wmd%d-%d-", os.Getpid(), seq), sub: (os.Getpid()+seq)%200 + 20, v4: v4, v6: v6}
	n.bridge = n.prefix + "br"
	t.Cleanup(func() { deleteNamespaces(n.prefix) })
	n.run("ip", "netns", "add", n.bridge)
	n.ip(n.bridge, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
	n.ip(n.bridge, "link", "set", "br0", "up")
	return n
}

// addPod makes a new namespace on the bridge with fresh addresses.
func (n *network) addPod() *pod {
	n.t.Helper()
	n.pods++
	i := n.pods
	p := &pod{ns: fmt.Sprintf("%sp%d", n.prefix, i)}
	n.run("ip", "netns", "add", p.ns)
	veth := fmt.Sprintf("v%d", i)
	n.ip(p.ns, "link", "add", "eth0", "type", "veth", "peer", "name", veth, "netns", n.bridge)
	n.ip(n.bridge, "link", "set", veth, "master", "br0")
	n.ip(n.bridge, "link", "set", veth, "up")
	if n.v4 {
		a := netip.AddrFrom4([4]byte{10, 98, byte(n.sub), byte(i)})
		n.ip(p.ns, "addr", "add", a.String()+"/24", "dev", "eth0")
		p.addr = append(p.addr, a)
	}
	// An IPv6-only pod has no IPv4 on eth0; lo keeps 127.0.0.1, as in a
	// real IPv6-only pod.
	if n.v6 {
		a := netip.MustParseAddr(fmt.Sprintf("fd98:%x::%x", n.sub, i))
		n.ip(p.ns, "addr", "add", a.String()+"/64", "dev", "eth0", "nodad")
		p.addr = append(p.addr, a)
	}
	n.ip(p.ns, "link", "set", "eth0", "up")
	n.ip(p.ns, "link", "set", "lo", "up")
	if n.v4 {
		n.ip(p.ns, "route", "add", "224.0.0.0/4", "dev", "eth0")
	}
	return p
}

// remove deletes a pod's namespace (its node must be closed first).
func (n *network) remove(p *pod) {
	n.run("ip", "netns", "delete", p.ns)
}

func (n *network) ip(ns string, args ...string) {
	n.t.Helper()
	n.run("ip", append([]string{"-n", ns}, args...)...)
}

func (n *network) run(name string, args ...string) {
	n.t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		n.t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}

// deleteNamespaces deletes every namespace whose name starts with prefix.
func deleteNamespaces(prefix string) {
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && strings.HasPrefix(f[0], prefix) {
			exec.Command("ip", "netns", "delete", f[0]).Run()
		}
	}
}

// startIn creates a node on a thread switched into ns, so its sockets (and
// the interfaces New inspects) are the pod's. The thread is locked and
// discarded afterwards: it never runs other goroutines in the wrong
// namespace.
func startIn(t *testing.T, ns string, o engine.Options) *engine.Node {
	t.Helper()
	type result struct {
		n   *engine.Node
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		fd, err := unix.Open("/var/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			ch <- result{err: fmt.Errorf("open namespace %s: %w", ns, err)}
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			ch <- result{err: fmt.Errorf("setns %s: %w", ns, err)}
			return
		}
		n, err := engine.New(o)
		ch <- result{n, err}
	}()
	r := <-ch
	if r.err != nil {
		t.Fatalf("node in %s: %v", ns, r.err)
	}
	t.Cleanup(func() { r.n.Close() })
	return r.n
}
