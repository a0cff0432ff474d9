package harness

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"time"

	"github.com/warpmesh/warpmesh/engine"
)

// WarpMeshSystems returns Warp Mesh unicast (publisher seeded with every
// receiver, receivers seeded with the publisher) and, when multicast is
// set, Warp Mesh over a multicast group on lo.
func WarpMeshSystems() []System {
	return []System{
		{Name: "warpmesh", Receiver: wmReceiver(false), Publisher: wmPublisher(false)},
		{Name: "warpmesh-mcast", Receiver: wmReceiver(true), Publisher: wmPublisher(true)},
		{Name: "warpmesh-keyring", Receiver: wmReceiver(false), Publisher: wmPublisher(false)},
		{Name: "warpmesh-nogso", Receiver: wmReceiver(false), Publisher: wmPublisher(false)},
		{Name: "warpmesh-jumbo", Receiver: wmReceiver(false), Publisher: wmPublisher(false)},
	}
}

// benchGroup is the multicast group of the multicast variant; it is only
// ever sent on lo (Options.Interface).
const benchGroup = "239.77.7.7"

// benchKey is the keyring secret of the warpmesh-keyring system.
var benchKey = []byte("warpmesh-bench-key-32-bytes-long")

// envWMProcs, when set to n > 0, runs the Warp Mesh children (publisher
// and receivers, not the other systems) with GOMAXPROCS n: a deployment
// setting measured in PERFORMANCE.md ("Tail latency").
const envWMProcs = "MESHBENCH_WM_GOMAXPROCS"

func wmProcs() {
	if n, err := strconv.Atoi(os.Getenv(envWMProcs)); err == nil && n > 0 {
		runtime.GOMAXPROCS(n)
	}
}

func wmOptions(spec *Spec, port int, mcast bool) (engine.Options, error) {
	wmProcs()
	o := engine.Options{
		Port:        port,
		Heartbeat:   time.Second,
		Cluster:     "meshbench",
		PublishRing: 1 << 22,
		RecvBuffer:  8 << 20,
		SendBuffer:  8 << 20,
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if mcast {
		o.Group = benchGroup
		o.GroupPort = spec.Ports[len(spec.Ports)-1]
		o.Interface = "lo"
		o.AdvertiseAddr = fmt.Sprintf("127.0.0.1:%d", port)
	} else {
		o.BindAddr = "127.0.0.1"
		o.UnicastOnly = true
	}
	o.DisableGSO = spec.System == "warpmesh-nogso"
	if spec.System == "warpmesh-jumbo" {
		o.MaxFrameSize = 8972 // a 9000-byte jumbo MTU less IP and UDP headers
	}
	if spec.System == "warpmesh-keyring" {
		kr, err := engine.NewKeyring(benchKey)
		if err != nil {
			return o, err
		}
		o.Keyring = kr
	}
	return o, nil
}

type wmReceiverT struct{ n *engine.Node }

func (r wmReceiverT) Drops() uint64 { s := r.n.Stats(); return s.Dropped() }
func (r wmReceiverT) Close() error  { return r.n.Close() }

// StatsLine reports the engine counters that bear on latency (flow-control
// waits, repair) for MESHBENCH_LATDUMP.
func (r wmReceiverT) StatsLine() string { return wmStatsLine(r.n) }

func wmStatsLine(n *engine.Node) string {
	s := n.Stats()
	return fmt.Sprintf("engine flowWaits %d flowTimeouts %d nacksSent %d nacksReceived %d retransmitted %d retransmitsReceived %d acksSent %d acksReceived %d dropped %d",
		s.FlowWaits, s.FlowTimeouts, s.NacksSent, s.NacksReceived, s.Retransmitted, s.RetransmitsReceived, s.AcksSent, s.AcksReceived, s.Dropped())
}

func wmReceiver(mcast bool) func(*Spec, int, func([]byte)) (Receiver, error) {
	return func(spec *Spec, idx int, deliver func([]byte)) (Receiver, error) {
		o, err := wmOptions(spec, spec.Ports[1+idx], mcast)
		if err != nil {
			return nil, err
		}
		if !mcast {
			o.Peers = []string{fmt.Sprintf("127.0.0.1:%d", spec.Ports[0])}
		}
		n, err := engine.New(o)
		if err != nil {
			return nil, err
		}
		n.OnInvalidate(func(inv engine.Invalidation) { deliver(inv.Key) })
		return wmReceiverT{n}, nil
	}
}

type wmPublisherT struct{ n *engine.Node }

func (p wmPublisherT) Publish(key []byte) error { return p.n.InvalidateBytes(key) }
func (p wmPublisherT) Flush() error             { return nil }
func (p wmPublisherT) Close() error             { return p.n.Close() }

// StatsLine is wmReceiverT.StatsLine for the publisher.
func (p wmPublisherT) StatsLine() string { return wmStatsLine(p.n) }

func wmPublisher(mcast bool) func(*Spec) (Publisher, error) {
	return func(spec *Spec) (Publisher, error) {
		o, err := wmOptions(spec, spec.Ports[0], mcast)
		if err != nil {
			return nil, err
		}
		if !mcast {
			for i := range spec.Receivers {
				o.Peers = append(o.Peers, fmt.Sprintf("127.0.0.1:%d", spec.Ports[1+i]))
			}
		}
		n, err := engine.New(o)
		if err != nil {
			return nil, err
		}
		if err := waitMembers(n, spec.Receivers, 10*time.Second); err != nil {
			n.Close()
			return nil, err
		}
		return wmPublisherT{n}, nil
	}
}

// waitMembers polls until n sees want live members (and, with multicast,
// until all of them are heard on the group, which a heartbeat round
// settles), or the deadline passes.
func waitMembers(n *engine.Node, want int, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		alive := 0
		for _, m := range n.Members() {
			if m.State == engine.StateAlive {
				alive++
			}
		}
		if alive >= want {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("warpmesh: receivers did not join in time")
		}
		time.Sleep(5 * time.Millisecond) // polling membership, not synchronising
	}
}
