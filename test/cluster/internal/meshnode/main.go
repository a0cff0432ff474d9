// Command meshnode is the cluster tests' node: one engine.Node driven by
// commands on stdin and reporting, on stdout, exactly what the checker in
// package cluster needs (the sequence of every published and applied
// invalidation frame, and every membership and Gap event with its time).
// It exists only for test/cluster and must never be used as a product.
//
// Output lines (fields separated by spaces; ids in hex; times in Unix ns):
//
//	self <id> <epoch> <addr>
//	pub <seq> <count> <first> <last>            own invalidations (EchoLocal), by frame
//	inv <origin> <seq> <count> <first> <last>   applied invalidations, by frame
//	ev <time> <type> <id> <epoch> <incarnation>  membership event
//	gap <time> <origin> <epoch> <first> <last> <missing> <reason>
//	published <total> | hwm <seq> <total> | stats k=v... | members id:state:epoch...
//
// A frame may be reported on several lines (a flush can split it); the
// reader sums them. <first> and <last> are the key numbers (keys are
// keyPrefix followed by a decimal number) of the frame's first and last
// record. Commands: "pub N RATE" (RATE per second, 0 = as fast as the
// ring takes them; N = 0 publishes until "stop"), "stop", "hwm", "stats",
// "members", "quit". SIGTERM or "quit" leaves gracefully; EOF on stdin aborts.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/warpmesh/warpmesh/engine"
)

// keyPrefix starts every key this node publishes; a decimal counter follows.
const keyPrefix = "cluster-test-key-"

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "meshnode:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		opts   engine.Options
		peers  string
		nodeID string
	)
	flag.IntVar(&opts.Port, "port", 7946, "UDP port")
	flag.StringVar(&opts.Group, "group", "", "multicast group (empty: default group, or unicast only with -peers)")
	flag.StringVar(&opts.Interface, "iface", "", "multicast interface")
	flag.StringVar(&opts.AdvertiseAddr, "advertise", "", "advertised ip")
	flag.StringVar(&peers, "peers", "", "comma-separated seeds")
	flag.BoolVar(&opts.UnicastOnly, "unicast-only", false, "disable multicast")
	flag.StringVar(&nodeID, "id", "", "node id in hex (default random)")
	flag.DurationVar(&opts.Heartbeat, "heartbeat", 100*time.Millisecond, "heartbeat")
	flag.DurationVar(&opts.SuspectAfter, "suspect", 0, "suspect after")
	flag.DurationVar(&opts.DeadAfter, "dead", 0, "dead after")
	flag.DurationVar(&opts.RepairTimeout, "repair-timeout", 0, "repair timeout")
	flag.IntVar(&opts.RetransmitBuffer, "retransmit-buffer", 0, "retransmit ring bytes")
	flag.IntVar(&opts.RecvBuffer, "recv-buffer", 0, "socket receive buffer bytes")
	flag.StringVar(&opts.Cluster, "cluster", "cluster-test", "cluster name")
	flag.Parse()
	if peers != "" {
		opts.Peers = strings.Split(peers, ",")
	}
	if nodeID != "" {
		id, err := strconv.ParseUint(nodeID, 16, 64)
		if err != nil {
			return fmt.Errorf("-id: %w", err)
		}
		opts.NodeID = id
	}
	opts.EchoLocal = true
	opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	out := &printer{w: bufio.NewWriterSize(os.Stdout, 64<<10)}
	node, err := engine.New(opts)
	if err != nil {
		return err
	}
	self := node.ID()
	out.line("self %016x %d %s", self, node.Epoch(), node.Addr())
	node.OnInvalidate(func(inv engine.Invalidation) { out.applied(self, inv) })
	node.OnEvent(func(e engine.Event) { out.event(e) })
	// Events raised before OnEvent (New starts at once) reached no
	// handler: report the members already known as joins.
	for _, m := range node.Members() {
		if m.State == engine.StateAlive || m.State == engine.StateSuspect {
			out.event(engine.Event{Type: engine.EventJoin, Member: m})
		}
	}

	stop := make(chan struct{})
	go out.flushEvery(10*time.Millisecond, stop)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	cmds := make(chan string)
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			cmds <- sc.Text()
		}
		close(cmds)
	}()

	p := &publisher{node: node, out: out}
	defer close(stop)
	for {
		select {
		case <-sigs:
			p.halt()
			return leave(node, out)
		case c, ok := <-cmds:
			if !ok { // the test is gone: crash-stop, nothing to say
				p.halt()
				return node.Abort()
			}
			if c == "quit" {
				p.halt()
				return leave(node, out)
			}
			if err := p.command(c); err != nil {
				out.line("error %q", err.Error())
			}
		}
	}
}

func leave(node *engine.Node, out *printer) error {
	err := node.Close()
	out.line("bye")
	return err
}

// publisher runs one publishing load at a time.
type publisher struct {
	node   *engine.Node
	out    *printer
	next   uint64 // key number of the next invalidation
	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

func (p *publisher) command(c string) error {
	f := strings.Fields(c)
	if len(f) == 0 {
		return nil
	}
	switch f[0] {
	case "pub":
		if len(f) != 3 {
			return fmt.Errorf("usage: pub N RATE")
		}
		n, err1 := strconv.Atoi(f[1])
		rate, err2 := strconv.Atoi(f[2])
		if err1 != nil || err2 != nil || n < 0 || rate < 0 {
			return fmt.Errorf("bad pub arguments %q", c)
		}
		p.halt()
		ctx, cancel := context.WithCancel(context.Background())
		p.mu.Lock()
		p.cancel, p.done = cancel, make(chan struct{})
		done := p.done
		p.mu.Unlock()
		go func() { defer close(done); p.load(ctx, n, rate) }()
	case "stop":
		p.halt()
	case "hwm":
		p.out.hwm()
	case "stats":
		p.out.stats(p.node.Stats())
	case "members":
		var b strings.Builder
		b.WriteString("members")
		for _, m := range p.node.Members() {
			fmt.Fprintf(&b, " %016x:%s:%d", m.ID, m.State, m.Epoch)
		}
		p.out.line("%s", b.String())
	default:
		return fmt.Errorf("unknown command %q", f[0])
	}
	return nil
}

// halt stops a running load and waits for it to report.
func (p *publisher) halt() {
	p.mu.Lock()
	cancel, done := p.cancel, p.done
	p.cancel, p.done = nil, nil
	p.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// load publishes n invalidations (forever with n = 0) at rate per second
// (0: as fast as the publish ring accepts), then prints "published".
func (p *publisher) load(ctx context.Context, n, rate int) {
	key := []byte(keyPrefix)
	start := time.Now()
	sent := 0
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for n == 0 || sent < n {
		if ctx.Err() != nil {
			break
		}
		if rate > 0 {
			due := int(time.Since(start).Seconds() * float64(rate))
			if sent >= due {
				select {
				case <-ctx.Done():
				case <-tick.C:
				}
				continue
			}
		}
		key = strconv.AppendUint(key[:len(keyPrefix)], p.next, 10)
		if err := p.node.Publish(ctx, key, false); err != nil {
			break
		}
		p.next++
		sent++
	}
	p.out.line("published %d", p.next)
}

// printer writes the output lines; applied invalidations are summed by
// frame until the frame changes or a flush.
type printer struct {
	mu   sync.Mutex
	w    *bufio.Writer
	cur  frameSum
	last uint64 // highest own seq echoed
	pubs uint64 // own invalidations echoed
}

type frameSum struct {
	own         bool
	origin, seq uint64
	count       int
	first, last uint64
}

func (p *printer) line(format string, a ...any) {
	p.mu.Lock()
	p.emitLocked()
	fmt.Fprintf(p.w, format+"\n", a...)
	p.w.Flush()
	p.mu.Unlock()
}

func (p *printer) applied(self uint64, inv engine.Invalidation) {
	num, ok := keyNumber(inv.Key)
	if !ok {
		num = ^uint64(0) // not ours: the checker sees a mismatch
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	own := inv.Origin == self
	if c := &p.cur; c.count > 0 && (c.own != own || c.origin != inv.Origin || c.seq != inv.Seq) {
		p.emitLocked()
	}
	if own {
		p.last = max(p.last, inv.Seq)
		p.pubs++
	}
	c := &p.cur
	if c.count == 0 {
		*c = frameSum{own: own, origin: inv.Origin, seq: inv.Seq, first: num}
	}
	c.count++
	c.last = num
}

func (p *printer) emitLocked() {
	c := &p.cur
	if c.count == 0 {
		return
	}
	if c.own {
		fmt.Fprintf(p.w, "pub %d %d %d %d\n", c.seq, c.count, c.first, c.last)
	} else {
		fmt.Fprintf(p.w, "inv %016x %d %d %d %d\n", c.origin, c.seq, c.count, c.first, c.last)
	}
	c.count = 0
}

func (p *printer) flushEvery(d time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			p.mu.Lock()
			p.emitLocked()
			p.w.Flush()
			p.mu.Unlock()
		}
	}
}

func (p *printer) event(e engine.Event) {
	now := time.Now().UnixNano()
	if e.Type == engine.EventGap {
		g := e.Gap
		p.line("gap %d %016x %d %d %d %d %s", now, g.Origin, g.Epoch, g.First, g.Last, g.Missing, g.Reason)
		return
	}
	m := e.Member
	p.line("ev %d %s %016x %d %d", now, e.Type, m.ID, m.Epoch, m.Incarnation)
}

func (p *printer) hwm() {
	p.mu.Lock()
	last, pubs := p.last, p.pubs
	p.mu.Unlock()
	p.line("hwm %d %d", last, pubs)
}

func (p *printer) stats(s engine.Stats) {
	h := &s.RepairLatency
	p.line("stats published=%d records_received=%d data_frames=%d duplicates=%d retransmits_received=%d "+
		"retransmitted=%d gaps_detected=%d gaps_repaired=%d gap_events=%d frames_lost=%d nacks_sent=%d "+
		"repair_count=%d repair_p50_us=%d repair_p99_us=%d repair_max_us=%d dropped=%d",
		s.Published, s.RecordsReceived, s.DataFrames, s.Duplicates, s.RetransmitsReceived,
		s.Retransmitted, s.GapsDetected, s.GapsRepaired, s.GapEvents(), s.FramesLost, s.NacksSent,
		h.Count, h.Quantile(0.5).Microseconds(), h.Quantile(0.99).Microseconds(), h.Max.Microseconds(), s.Dropped())
	var b strings.Builder
	b.WriteString("drops")
	for _, r := range engine.DropReasons() {
		if s.Drops[r] > 0 {
			fmt.Fprintf(&b, " %s=%d", r, s.Drops[r])
		}
	}
	fmt.Fprintf(&b, " frames_received=%d heartbeats_received=%d", s.FramesReceived, s.HeartbeatsReceived)
	p.line("%s", b.String())
}

// keyNumber parses the decimal counter after keyPrefix.
func keyNumber(k []byte) (uint64, bool) {
	if len(k) <= len(keyPrefix) || string(k[:len(keyPrefix)]) != keyPrefix {
		return 0, false
	}
	var n uint64
	for _, c := range k[len(keyPrefix):] {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}
