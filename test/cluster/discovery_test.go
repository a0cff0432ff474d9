package cluster

import (
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestDiscovery runs `warpmesh node --print` on four hosts and checks that
// every node finds every other (by multicast, from a single unicast seed,
// or both mixed), then that `warpmesh invalidate` from a fifth host reaches
// all four.
func TestDiscovery(t *testing.T) {
	needCluster(t)
	cases := []struct {
		name string
		cfg  func(m *mesh, i int) nodeConfig // i is 0-based
		tool []string                        // extra flags for `warpmesh invalidate`
	}{
		{"multicast", func(*mesh, int) nodeConfig { return nodeConfig{cli: true} }, nil},
		{"unicast-single-seed", func(m *mesh, i int) nodeConfig {
			c := nodeConfig{cli: true, unicastOnly: true}
			if i > 0 {
				c.peers = []*host{m.hosts[0]}
			}
			return c
		}, []string{"--unicast-only", "--peers", "SEED"}},
		{"mixed", func(m *mesh, i int) nodeConfig {
			if i < 2 {
				return nodeConfig{cli: true} // multicast only, no seeds
			}
			return nodeConfig{cli: true, unicastOnly: true, peers: []*host{m.hosts[0]}}
		}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := newMesh(t, 5)
			var nodes []*node
			for i, h := range m.hosts[:4] {
				nodes = append(nodes, h.start(tc.cfg(m, i)))
			}
			waitMembers(t, 10*time.Second, nodes...)
			took := time.Since(nodes[len(nodes)-1].started)
			t.Logf("%s: 4 hosts see each other alive %v after the last node was started", tc.name, took)

			keys := []string{"user:1", "user:2", fmt.Sprintf("run:%s", tc.name)}
			tool := m.hosts[4]
			args := []string{"netns", "exec", tool.ns, cliBin, "invalidate", "--port", strconv.Itoa(port),
				"--interface", "eth0", "--advertise", tool.addr.String(), "--cluster", "cluster-test",
				"--heartbeat", heartbeat.String(), "--min-members", "4", "--wait", "10s"}
			for _, a := range tc.tool {
				if a == "SEED" {
					a = fmt.Sprintf("%s:%d", m.hosts[0].addr, port)
				}
				args = append(args, a)
			}
			if !strings.Contains(strings.Join(tc.tool, " "), "unicast-only") {
				args = append(args, "--group", group)
			}
			args = append(args, keys...)
			sent := time.Now()
			if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
				t.Fatalf("warpmesh invalidate: %v\n%s", err, out)
			}
			waitFor(t, "every node applied the tool's keys", 10*time.Second, func() bool {
				for _, n := range nodes {
					n.mu.Lock()
					for _, k := range keys {
						if !n.cliKeys[k] {
							n.mu.Unlock()
							return false
						}
					}
					n.mu.Unlock()
				}
				return true
			}, func() string { return diagnoseAll(nodes) })
			owed := len(keys) * len(nodes)
			record(t, result{
				scenario: "1 discovery: " + tc.name, published: owed, delivered: owed,
				detection: "full mesh " + ms(took),
				repair:    "-",
				notes:     fmt.Sprintf("warpmesh node --print ×4; warpmesh invalidate from a 5th host reached all in %s (incl. its join)", ms(time.Since(sent))),
			})
		})
	}
}
