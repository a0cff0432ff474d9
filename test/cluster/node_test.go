package cluster

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Timing used by every scenario unless it says otherwise: short enough
// that the suite runs in about a minute, long enough that two busy cores
// under -race do not produce false suspicions.
const (
	heartbeat     = 100 * time.Millisecond
	suspectAfter  = 400 * time.Millisecond
	deadAfter     = 800 * time.Millisecond
	repairTimeout = 2 * time.Second
	port          = 7946
	group         = "239.7.7.7"
)

// nodeConfig is how a node process is started.
type nodeConfig struct {
	id               uint64 // 0: random
	unicastOnly      bool
	peers            []*host
	retransmitBuffer int
	recvBuffer       int
	cli              bool // run "warpmesh node --print" instead of meshnode
}

// frame is one DATA frame as a publisher sent it or a receiver applied it:
// count invalidations with key numbers first..last.
type frame struct {
	count       int
	first, last uint64
}

// gapEvent is one Gap event.
type gapEvent struct {
	at                   time.Time
	origin, epoch        uint64
	first, last, missing uint64
	reason               string
}

// memberEvent is one membership event.
type memberEvent struct {
	at           time.Time
	kind         string // join, suspect, alive, dead, leave
	id, epoch    uint64
	incarnations uint64
}

// node is one node process (one life of a host): its output parsed as it
// arrives.
type node struct {
	h       *host
	label   string // h1, h1#2 for the second life, ...
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	started time.Time
	exited  chan struct{}

	mu        sync.Mutex
	id, epoch uint64
	pubs      map[uint64]*frame            // own frames by seq
	pubTotal  int                          // own invalidations echoed
	invs      map[uint64]map[uint64]*frame // origin → seq → applied
	gaps      []gapEvent
	events    []memberEvent
	states    map[uint64]string // id → latest membership state
	replies   map[string][]string
	stderr    bytes.Buffer
	cli       bool // a `warpmesh node`, with its admin endpoint on adminAddr
	table     map[uint64]string
	tableAt   time.Time
	cliKeys   map[string]bool // keys applied, from the CLI's "inv <origin> exact <key>"
	bad       []string        // lines that did not parse
	waitErr   error
	exitState string
}

// start runs a node on h and waits until it has reported itself.
func (h *host) start(cfg nodeConfig) *node {
	t := h.m.t
	t.Helper()
	args := []string{"netns", "exec", h.ns}
	if cfg.cli {
		args = append(args, cliBin, "node", "--print", "--port", strconv.Itoa(port),
			"--interface", "eth0", "--advertise", h.addr.String(), "--cluster", "cluster-test",
			"--heartbeat", heartbeat.String(), "--suspect-after", suspectAfter.String(),
			"--dead-after", deadAfter.String(), "--log-level", "warn", "--http", adminAddr)
		if !cfg.unicastOnly {
			args = append(args, "--group", group)
		}
	} else {
		args = append(args, nodeBin, "-port", strconv.Itoa(port), "-iface", "eth0",
			"-advertise", h.addr.String(), "-heartbeat", heartbeat.String(),
			"-suspect", suspectAfter.String(), "-dead", deadAfter.String(),
			"-repair-timeout", repairTimeout.String())
		if !cfg.unicastOnly {
			args = append(args, "-group", group)
		}
		if cfg.retransmitBuffer > 0 {
			args = append(args, "-retransmit-buffer", strconv.Itoa(cfg.retransmitBuffer))
		}
		if cfg.recvBuffer > 0 {
			args = append(args, "-recv-buffer", strconv.Itoa(cfg.recvBuffer))
		}
	}
	if cfg.unicastOnly {
		args = append(args, flagName(cfg.cli, "unicast-only"))
	}
	if len(cfg.peers) > 0 {
		var seeds []string
		for _, p := range cfg.peers {
			seeds = append(seeds, fmt.Sprintf("%s:%d", p.addr, port))
		}
		args = append(args, flagName(cfg.cli, "peers"), strings.Join(seeds, ","))
	}
	if cfg.id != 0 {
		name := "id"
		if cfg.cli {
			name = "node-id"
		}
		args = append(args, flagName(cfg.cli, name), fmt.Sprintf("%016x", cfg.id))
	}
	n := &node{
		h: h, label: h.name, exited: make(chan struct{}),
		pubs: map[uint64]*frame{}, invs: map[uint64]map[uint64]*frame{},
		states: map[uint64]string{}, replies: map[string][]string{}, cliKeys: map[string]bool{},
		cli: cfg.cli,
	}
	if len(h.lives) > 0 {
		n.label = fmt.Sprintf("%s#%d", h.name, len(h.lives)+1)
	}
	n.cmd = exec.Command("ip", args...)
	n.cmd.Stderr = lockedWriter{&n.mu, &n.stderr}
	stdin, err := n.cmd.StdinPipe()
	if err != nil {
		t.Fatalf("%s: %v", n.label, err)
	}
	stdout, err := n.cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("%s: %v", n.label, err)
	}
	n.stdin = stdin
	n.started = time.Now()
	if err := n.cmd.Start(); err != nil {
		t.Fatalf("%s: start: %v", n.label, err)
	}
	registry.Lock()
	registry.nodes[n] = true
	registry.Unlock()
	h.lives = append(h.lives, n)
	go n.read(stdout)
	waitFor(t, n.label+" reports itself", 10*time.Second, func() bool {
		n.mu.Lock()
		defer n.mu.Unlock()
		return n.id != 0
	}, n.diagnose)
	return n
}

func flagName(cli bool, name string) string {
	if cli {
		return "--" + name
	}
	return "-" + name
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.b.Len() > 64<<10 {
		return len(p), nil // enough to diagnose
	}
	return w.b.Write(p)
}

// read parses the node's stdout until it closes, then reaps the process.
func (n *node) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		n.parse(sc.Text())
	}
	err := n.cmd.Wait()
	n.mu.Lock()
	n.waitErr = err
	n.exitState = n.cmd.ProcessState.String()
	n.mu.Unlock()
	close(n.exited)
}

// send writes a command line to the node.
func (n *node) send(t *testing.T, cmd string) {
	t.Helper()
	if _, err := io.WriteString(n.stdin, cmd+"\n"); err != nil {
		t.Fatalf("%s: command %q: %v", n.label, cmd, err)
	}
}

// ask sends cmd and returns the first new reply of kind.
func (n *node) ask(t *testing.T, cmd, kind string) string {
	t.Helper()
	n.mu.Lock()
	before := len(n.replies[kind])
	n.mu.Unlock()
	n.send(t, cmd)
	var reply string
	waitFor(t, fmt.Sprintf("%s answers %q", n.label, cmd), 10*time.Second, func() bool {
		n.mu.Lock()
		defer n.mu.Unlock()
		if len(n.replies[kind]) > before {
			reply = n.replies[kind][before]
			return true
		}
		return false
	}, n.diagnose)
	return reply
}

// publish publishes count invalidations at rate per second (0: flat out),
// waits until all of them were packed into frames and returns the
// publisher's highest sequence.
func (n *node) publish(t *testing.T, count, rate int) uint64 {
	t.Helper()
	want := n.startPublish(t, count, rate)
	return n.awaitPublished(t, want, 60*time.Second)
}

// startPublish starts a load of count invalidations (0: until "stop") and
// returns the echo total to wait for.
func (n *node) startPublish(t *testing.T, count, rate int) int {
	t.Helper()
	n.mu.Lock()
	want := n.pubTotal + count
	n.mu.Unlock()
	n.send(t, fmt.Sprintf("pub %d %d", count, rate))
	return want
}

// awaitPublished waits until the node has echoed want invalidations of its
// own (packed into frames, so their sequences are known) and returns its
// highest sequence.
func (n *node) awaitPublished(t *testing.T, want int, timeout time.Duration) uint64 {
	t.Helper()
	waitFor(t, fmt.Sprintf("%s publishes %d invalidations", n.label, want), timeout, func() bool {
		n.mu.Lock()
		defer n.mu.Unlock()
		return n.pubTotal >= want
	}, n.diagnose)
	return n.highSeq()
}

// highSeq returns the highest sequence the node has published.
func (n *node) highSeq() uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	var top uint64
	for s := range n.pubs {
		top = max(top, s)
	}
	return top
}

// stats asks the node for its engine counters.
func (n *node) stats(t *testing.T) map[string]int64 {
	t.Helper()
	line := n.ask(t, "stats", "stats")
	out := map[string]int64{}
	for _, kv := range strings.Fields(line)[1:] {
		k, v, _ := strings.Cut(kv, "=")
		out[k], _ = strconv.ParseInt(v, 10, 64)
	}
	return out
}

// adminAddr is where a `warpmesh node` serves its admin endpoint, inside
// its own namespace.
const adminAddr = "127.0.0.1:7999"

// state returns the membership state n last reported for id ("" unknown).
// For a `warpmesh node` a state other than alive is checked against its
// member table (`warpmesh members`, at most every 100 ms): --print lines
// for members heard before the CLI subscribed to events are never printed.
func (n *node) state(id uint64) string {
	n.mu.Lock()
	s, cli := n.states[id], n.cli
	if !cli || s == "alive" {
		n.mu.Unlock()
		return s
	}
	if time.Since(n.tableAt) < 100*time.Millisecond {
		defer n.mu.Unlock()
		return n.table[id]
	}
	n.tableAt = time.Now()
	n.mu.Unlock()
	out, err := exec.Command("ip", "netns", "exec", n.h.ns, cliBin, "members", "--http", adminAddr).Output()
	table := map[uint64]string{}
	if err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			if len(f) >= 3 {
				if v, err := strconv.ParseUint(f[0], 16, 64); err == nil {
					table[v] = f[2]
				}
			}
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.table = table
	return table[id]
}

// eventAfter returns the first event of kind about id at or after since.
func (n *node) eventAfter(kind string, id uint64, since time.Time) (memberEvent, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, e := range n.events {
		if e.kind == kind && e.id == id && !e.at.Before(since) {
			return e, true
		}
	}
	return memberEvent{}, false
}

// countEvents counts events of kind about any of ids.
func (n *node) countEvents(kind string, ids ...uint64) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := 0
	for _, e := range n.events {
		for _, id := range ids {
			if e.kind == kind && e.id == id {
				c++
			}
		}
	}
	return c
}

// gapsFrom returns the Gap events n raised about origin.
func (n *node) gapsFrom(origin uint64) []gapEvent {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []gapEvent
	for _, g := range n.gaps {
		if g.origin == origin {
			out = append(out, g)
		}
	}
	return out
}

func (n *node) signal(t *testing.T, s syscall.Signal) {
	t.Helper()
	if err := n.cmd.Process.Signal(s); err != nil {
		t.Fatalf("%s: %v: %v", n.label, s, err)
	}
}

// stop asks the node to leave gracefully and waits for it to exit.
func (n *node) stop(t *testing.T) {
	t.Helper()
	n.signal(t, syscall.SIGTERM)
	n.wait(t)
}

// crash kills the node with SIGKILL and waits for it; it returns when the
// signal was sent.
func (n *node) crash(t *testing.T) time.Time {
	t.Helper()
	at := time.Now()
	n.signal(t, syscall.SIGKILL)
	n.wait(t)
	return at
}

func (n *node) wait(t *testing.T) {
	t.Helper()
	select {
	case <-n.exited:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not exit\n%s", n.label, n.diagnose())
	}
}

// kill ends the process if it still runs (cleanup path; never fails).
func (n *node) kill() {
	select {
	case <-n.exited:
	default:
		_ = n.cmd.Process.Kill() // it may have just exited
		select {
		case <-n.exited:
		case <-time.After(5 * time.Second):
		}
	}
	n.stdin.Close()
	registry.Lock()
	delete(registry.nodes, n)
	registry.Unlock()
}

// diagnose describes the node for a failure message; a running node is
// asked for its counters first (briefly: it may be stopped or stuck).
func (n *node) diagnose() string {
	n.mu.Lock()
	before := len(n.replies["drops"])
	n.mu.Unlock()
	select {
	case <-n.exited:
	default:
		if _, err := io.WriteString(n.stdin, "members\nstats\n"); err == nil {
			deadline := time.Now().Add(500 * time.Millisecond)
			for time.Now().Before(deadline) {
				n.mu.Lock()
				got := len(n.replies["drops"]) > before
				n.mu.Unlock()
				if got {
					break
				}
				time.Sleep(10 * time.Millisecond) // diagnostics only, after a failure
			}
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "--- %s (id %016x epoch %d, %d events, %d gaps, exit %q %v)\n",
		n.label, n.id, n.epoch, len(n.events), len(n.gaps), n.exitState, n.waitErr)
	for _, kind := range []string{"members", "stats", "drops"} {
		if r := n.replies[kind]; len(r) > 0 {
			fmt.Fprintf(&b, "    %s\n", r[len(r)-1])
		}
	}
	for id, s := range n.states {
		fmt.Fprintf(&b, "    member %016x %s\n", id, s)
	}
	if len(n.bad) > 0 {
		fmt.Fprintf(&b, "    unparsed: %q\n", n.bad)
	}
	if n.stderr.Len() > 0 {
		fmt.Fprintf(&b, "    stderr: %s\n", n.stderr.String())
	}
	return b.String()
}

// waitFor polls cond until it holds or timeout passes, then fails the test
// with what and the diagnostics.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool, diag ...func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			var b strings.Builder
			for _, d := range diag {
				b.WriteString(d())
			}
			t.Fatalf("timed out after %v waiting until %s\n%s", timeout, what, b.String())
		}
		<-tick.C
	}
}

// waitMembers waits until every node in nodes sees every other as alive
// (at its current epoch) and returns how long that took.
func waitMembers(t *testing.T, timeout time.Duration, nodes ...*node) time.Duration {
	t.Helper()
	start := time.Now()
	waitFor(t, "every node sees every other alive", timeout, func() bool {
		for _, a := range nodes {
			for _, b := range nodes {
				if a != b && a.state(b.id) != "alive" {
					return false
				}
			}
		}
		return true
	}, func() string { return diagnoseAll(nodes) })
	return time.Since(start)
}

func diagnoseAll(nodes []*node) string {
	var b strings.Builder
	for _, n := range nodes {
		b.WriteString(n.diagnose())
	}
	return b.String()
}

// waitEvents waits until every observer has reported an event of kind
// about every target since since, and returns the fastest and slowest
// delay from since to the event (by the observers' clocks: same machine).
func waitEvents(t *testing.T, timeout time.Duration, kind string, since time.Time, observers, targets []*node) (fastest, slowest time.Duration) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d nodes report %q for %d nodes", len(observers), kind, len(targets)), timeout, func() bool {
		fastest, slowest = time.Duration(1<<62), 0
		for _, o := range observers {
			for _, x := range targets {
				e, ok := o.eventAfter(kind, x.id, since)
				if !ok {
					return false
				}
				d := e.at.Sub(since)
				fastest, slowest = min(fastest, d), max(slowest, d)
			}
		}
		return true
	}, func() string { return diagnoseAll(append(append([]*node{}, observers...), targets...)) })
	return fastest, slowest
}

// others returns nodes without skip.
func others(nodes []*node, skip ...*node) []*node {
	var out []*node
next:
	for _, n := range nodes {
		for _, s := range skip {
			if n == s {
				continue next
			}
		}
		out = append(out, n)
	}
	return out
}
