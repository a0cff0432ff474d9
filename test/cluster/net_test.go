package cluster

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// Every namespace this package creates is named namePrefix + "<pid>-<mesh>-<host>".
const namePrefix = "wmc"

// registry remembers what this process created, so teardownAll can remove
// it on a signal even when a test's own cleanup never runs.
var registry = struct {
	sync.Mutex
	meshes     int
	namespaces map[string]bool
	nodes      map[*node]bool
}{namespaces: map[string]bool{}, nodes: map[*node]bool{}}

// mesh is a set of hosts (network namespaces) on one bridge that lives in
// a namespace of its own.
type mesh struct {
	t      *testing.T
	prefix string // namespace name prefix of this mesh
	bridge string // the bridge's namespace
	subnet [3]byte
	hosts  []*host
}

// host is one namespace with one veth (eth0) on the bridge.
type host struct {
	m     *mesh
	name  string // h1, h2, ...
	ns    string
	addr  netip.Addr
	lives []*node // every node process started on it, in order
}

// newMesh creates n hosts h1..hn, 10.99.<s>.1..n/24, on a fresh bridge,
// each with lo up and a multicast route on its veth. Everything is
// removed when the test ends.
func newMesh(t *testing.T, n int) *mesh {
	t.Helper()
	registry.Lock()
	registry.meshes++
	seq := registry.meshes
	registry.Unlock()
	pid := os.Getpid()
	m := &mesh{
		t:      t,
		prefix: fmt.Sprintf("%s%d-%d-", namePrefix, pid, seq),
		subnet: [3]byte{10, 99, byte((pid+seq)%250 + 1)},
	}
	m.bridge = m.prefix + "br"
	t.Cleanup(m.teardown)
	m.addNamespace(m.bridge)
	m.ip(m.bridge, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
	m.ip(m.bridge, "link", "set", "br0", "up")
	for i := 1; i <= n; i++ {
		h := &host{
			m:    m,
			name: fmt.Sprintf("h%d", i),
			addr: netip.AddrFrom4([4]byte{m.subnet[0], m.subnet[1], m.subnet[2], byte(i)}),
		}
		h.ns = m.prefix + h.name
		m.addNamespace(h.ns)
		m.ip(h.ns, "link", "add", "eth0", "type", "veth", "peer", "name", h.name, "netns", m.bridge)
		m.ip(m.bridge, "link", "set", h.name, "master", "br0")
		m.ip(m.bridge, "link", "set", h.name, "up")
		m.ip(h.ns, "addr", "add", h.addr.String()+"/24", "dev", "eth0")
		m.ip(h.ns, "link", "set", "eth0", "up")
		m.ip(h.ns, "link", "set", "lo", "up")
		m.ip(h.ns, "route", "add", "224.0.0.0/4", "dev", "eth0")
		m.hosts = append(m.hosts, h)
	}
	return m
}

func (m *mesh) addNamespace(ns string) {
	m.t.Helper()
	registry.Lock()
	registry.namespaces[ns] = true
	registry.Unlock()
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		m.t.Fatalf("ip netns add %s: %v: %s", ns, err, out)
	}
}

// ip runs "ip -n ns args..." and fails the test on error.
func (m *mesh) ip(ns string, args ...string) {
	m.t.Helper()
	full := append([]string{"-n", ns}, args...)
	if out, err := exec.Command("ip", full...).CombinedOutput(); err != nil {
		m.t.Fatalf("ip %s: %v: %s", strings.Join(full, " "), err, out)
	}
}

// nft loads an nftables script inside h's namespace.
func (h *host) nft(script string) {
	h.m.t.Helper()
	cmd := exec.Command("ip", "netns", "exec", h.ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		h.m.t.Fatalf("nft in %s: %v: %s\nscript:\n%s", h.ns, err, out, script)
	}
}

// setLoss drops pct percent of the UDP datagrams h receives, at random.
func (h *host) setLoss(pct int) {
	h.nft(fmt.Sprintf(`table inet wmc_loss {
	chain input {
		type filter hook input priority 0; policy accept;
		meta l4proto udp numgen random mod 100 < %d drop
	}
}
`, pct))
}

// partition drops everything between the hosts of a and the hosts of b,
// in both directions, at every host involved.
func partition(a, b []*host) {
	for _, side := range [2][2][]*host{{a, b}, {b, a}} {
		var others []string
		for _, o := range side[1] {
			others = append(others, o.addr.String())
		}
		set := strings.Join(others, ", ")
		for _, h := range side[0] {
			h.nft(fmt.Sprintf(`table inet wmc_part {
	chain input {
		type filter hook input priority 0; policy accept;
		ip saddr { %s } drop
	}
	chain output {
		type filter hook output priority 0; policy accept;
		ip daddr { %s } drop
	}
}
`, set, set))
		}
	}
}

// heal removes every partition rule.
func heal(hosts []*host) {
	for _, h := range hosts {
		h.nft("delete table inet wmc_part\n")
	}
}

// teardown kills the mesh's node processes and deletes its namespaces.
func (m *mesh) teardown() {
	for _, h := range m.hosts {
		for _, n := range h.lives {
			n.kill()
		}
	}
	deleteNamespaces(m.prefix)
}

// teardownAll removes everything this process created (signal path).
func teardownAll() {
	registry.Lock()
	nodes := make([]*node, 0, len(registry.nodes))
	for n := range registry.nodes {
		nodes = append(nodes, n)
	}
	registry.Unlock()
	for _, n := range nodes {
		n.kill()
	}
	deleteNamespaces(fmt.Sprintf("%s%d-", namePrefix, os.Getpid()))
}

// deleteNamespaces deletes every namespace whose name starts with prefix,
// after killing any process still inside it.
func deleteNamespaces(prefix string) {
	for _, ns := range listNamespaces() {
		if !strings.HasPrefix(ns, prefix) {
			continue
		}
		killInside(ns)
		if err := exec.Command("ip", "netns", "delete", ns).Run(); err == nil {
			registry.Lock()
			delete(registry.namespaces, ns)
			registry.Unlock()
		}
	}
}

// removeLeftovers deletes namespaces left by an earlier run of this
// package that crashed: names with our prefix whose creating process is
// gone.
func removeLeftovers() {
	for _, ns := range listNamespaces() {
		rest, ok := strings.CutPrefix(ns, namePrefix)
		if !ok {
			continue
		}
		pidText, _, ok := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if !ok || err != nil || pid == os.Getpid() {
			continue
		}
		if processAlive(pid) {
			continue // its run is still going
		}
		fmt.Fprintf(os.Stderr, "cluster: removing leftover namespace %s\n", ns)
		killInside(ns)
		_ = exec.Command("ip", "netns", "delete", ns).Run() // best effort: reported by the next run if it stays
	}
}

func listNamespaces() []string {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return nil
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	return names
}

// killInside SIGKILLs the processes in ns: node processes this package
// started (in this run or a crashed earlier one).
func killInside(ns string) {
	out, err := exec.Command("ip", "netns", "pids", ns).Output()
	if err != nil {
		return
	}
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
			_ = syscall.Kill(pid, syscall.SIGKILL) // already gone is fine
		}
	}
}

// processAlive reports whether pid runs (a zombie does not).
func processAlive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(stat), ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}

// removeLeftoverDirs deletes the binaries directories of crashed runs.
func removeLeftoverDirs() {
	dirs, err := filepath.Glob(filepath.Join(os.TempDir(), binDirPrefix+"*"))
	if err != nil {
		return
	}
	for _, d := range dirs {
		pidText, _, _ := strings.Cut(strings.TrimPrefix(filepath.Base(d), binDirPrefix), "-")
		if pid, err := strconv.Atoi(pidText); err == nil && pid != os.Getpid() && !processAlive(pid) {
			os.RemoveAll(d)
		}
	}
}
