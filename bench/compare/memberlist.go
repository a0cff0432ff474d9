package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/warpmesh/warpmesh/bench/harness"
)

// memberlistSystems are hashicorp/memberlist used two ways (its gossip
// broadcast queue, and SendBestEffort to each member directly), each with
// the default LAN config and a tuned one. Every node binds 127.0.0.1.
func memberlistSystems() []harness.System {
	var out []harness.System
	for _, direct := range []bool{false, true} {
		for _, tuned := range []bool{false, true} {
			name := "memberlist-bcast"
			if direct {
				name = "memberlist-direct"
			}
			if tuned {
				name += "-tuned"
			}
			out = append(out, harness.System{
				Name:      name,
				Receiver:  mlReceiver(tuned),
				Publisher: mlPublisher(direct, tuned),
			})
		}
	}
	return out
}

// mlConfig is DefaultLANConfig on 127.0.0.1, or that tuned for this
// workload: gossip every millisecond to every member, packets up to the
// loopback MTU, one retransmission, a deep handoff queue.
func mlConfig(name string, port int, tuned bool, d memberlist.Delegate, logs io.Writer) *memberlist.Config {
	c := memberlist.DefaultLANConfig()
	c.Name = name
	c.BindAddr, c.AdvertiseAddr = "127.0.0.1", "127.0.0.1"
	c.BindPort, c.AdvertisePort = port, port
	c.Delegate = d
	c.LogOutput = logs
	if tuned {
		c.GossipInterval = time.Millisecond
		c.GossipNodes = 8
		c.UDPBufferSize = 65000
		c.RetransmitMult = 1
		c.HandoffQueueDepth = 1 << 16
	}
	return c
}

// dropCounter counts memberlist's "handler queue full, dropping" warnings,
// its only record of messages it threw away.
type dropCounter struct{ n atomic.Uint64 }

func (d *dropCounter) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte("queue full")) {
		d.n.Add(1)
	}
	return len(p), nil
}

// mlDelegate delivers user messages and, on the publisher, hands out the
// broadcast queue's messages for gossip.
type mlDelegate struct {
	deliver func([]byte)
	queue   *memberlist.TransmitLimitedQueue
}

func (d *mlDelegate) NodeMeta(int) []byte { return nil }
func (d *mlDelegate) NotifyMsg(b []byte) {
	if d.deliver != nil {
		d.deliver(b)
	}
}
func (d *mlDelegate) GetBroadcasts(overhead, limit int) [][]byte {
	if d.queue == nil {
		return nil
	}
	return d.queue.GetBroadcasts(overhead, limit)
}
func (d *mlDelegate) LocalState(bool) []byte              { return nil }
func (d *mlDelegate) MergeRemoteState(buf []byte, _ bool) {}

type mlReceiverT struct {
	ml    *memberlist.Memberlist
	drops *dropCounter
}

func (r mlReceiverT) Drops() uint64 { return r.drops.n.Load() }
func (r mlReceiverT) Close() error  { return r.ml.Shutdown() }

func mlReceiver(tuned bool) func(*harness.Spec, int, func([]byte)) (harness.Receiver, error) {
	return func(spec *harness.Spec, idx int, deliver func([]byte)) (harness.Receiver, error) {
		drops := &dropCounter{}
		ml, err := memberlist.Create(mlConfig(fmt.Sprintf("recv-%d", idx), spec.Ports[1+idx], tuned, &mlDelegate{deliver: deliver}, drops))
		if err != nil {
			return nil, err
		}
		return mlReceiverT{ml: ml, drops: drops}, nil
	}
}

// mlBroadcast is one invalidation in the broadcast queue.
type mlBroadcast []byte

func (b mlBroadcast) Invalidates(memberlist.Broadcast) bool { return false }
func (b mlBroadcast) Message() []byte                       { return b }
func (b mlBroadcast) Finished()                             {}

type mlPublisherT struct {
	ml     *memberlist.Memberlist
	queue  *memberlist.TransmitLimitedQueue
	direct bool
	nodes  []*memberlist.Node
}

// maxQueued bounds the broadcast queue: past it Publish waits for gossip
// to drain it (the queue has no limit of its own).
const maxQueued = 50000

func (p *mlPublisherT) Publish(key []byte) error {
	if p.direct {
		for _, n := range p.nodes {
			if err := p.ml.SendBestEffort(n, key); err != nil { // copies key
				return err
			}
		}
		return nil
	}
	for p.queue.NumQueued() >= maxQueued {
		time.Sleep(100 * time.Microsecond) // backpressure: gossip drains the queue
	}
	p.queue.QueueBroadcast(mlBroadcast(bytes.Clone(key)))
	return nil
}

func (p *mlPublisherT) Flush() error { return nil }
func (p *mlPublisherT) Close() error { return p.ml.Shutdown() }

func mlPublisher(direct, tuned bool) func(*harness.Spec) (harness.Publisher, error) {
	return func(spec *harness.Spec) (harness.Publisher, error) {
		d := &mlDelegate{}
		cfg := mlConfig("pub", spec.Ports[0], tuned, d, io.Discard)
		ml, err := memberlist.Create(cfg)
		if err != nil {
			return nil, err
		}
		d.queue = &memberlist.TransmitLimitedQueue{NumNodes: ml.NumMembers, RetransmitMult: cfg.RetransmitMult}
		var seeds []string
		for i := range spec.Receivers {
			seeds = append(seeds, fmt.Sprintf("127.0.0.1:%d", spec.Ports[1+i]))
		}
		if _, err := ml.Join(seeds); err != nil {
			ml.Shutdown()
			return nil, err
		}
		deadline := time.Now().Add(10 * time.Second)
		for ml.NumMembers() < spec.Receivers+1 {
			if time.Now().After(deadline) {
				ml.Shutdown()
				return nil, errors.New("memberlist: receivers did not join in time")
			}
			time.Sleep(5 * time.Millisecond) // polling membership, not synchronising
		}
		p := &mlPublisherT{ml: ml, queue: d.queue, direct: direct}
		for _, n := range ml.Members() {
			if n.Name != cfg.Name {
				p.nodes = append(p.nodes, n)
			}
		}
		return p, nil
	}
}
