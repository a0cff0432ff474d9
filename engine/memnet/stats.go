package memnet

import "sync/atomic"

// DropReason says why the network discarded a datagram.
type DropReason uint8

// Drop reasons, counted in Stats.Drops. DropQueueFull is counted at the
// receiving endpoint; every other reason at the sending one.
const (
	DropLoss          DropReason = iota // random loss on the link
	DropPartition                       // the link is cut by Partition
	DropNoRoute                         // no open endpoint at the destination
	DropQueueFull                       // the receiver's queue was full
	DropTooLarge                        // longer than the network's MTU (WriteBatch fails)
	DropSchedulerFull                   // too many delayed datagrams in flight
	NumDropReasons
)

var dropNames = [NumDropReasons]string{"loss", "partition", "no_route", "queue_full", "too_large", "scheduler_full"}

// String names the reason.
func (r DropReason) String() string {
	if r < NumDropReasons {
		return dropNames[r]
	}
	return "unknown"
}

// Stats counts an endpoint's traffic. Counters only grow.
type Stats struct {
	Sent       uint64 // datagrams accepted by WriteBatch
	Duplicated uint64 // extra copies of sent datagrams the network made
	Delivered  uint64 // datagrams that arrived in this endpoint's queue
	Read       uint64 // datagrams returned by ReadBatch
	Drops      [NumDropReasons]uint64
}

// Dropped returns the total of Drops.
func (s *Stats) Dropped() uint64 {
	var t uint64
	for _, d := range s.Drops {
		t += d
	}
	return t
}

func (s *Stats) add(o *Stats) {
	s.Sent += o.Sent
	s.Duplicated += o.Duplicated
	s.Delivered += o.Delivered
	s.Read += o.Read
	for i := range s.Drops {
		s.Drops[i] += o.Drops[i]
	}
}

type counters struct {
	sent, duplicated, delivered, read atomic.Uint64
	drops                             [NumDropReasons]atomic.Uint64
}

func (c *counters) drop(r DropReason) { c.drops[r].Add(1) }

func (c *counters) snapshot() Stats {
	s := Stats{
		Sent:       c.sent.Load(),
		Duplicated: c.duplicated.Load(),
		Delivered:  c.delivered.Load(),
		Read:       c.read.Load(),
	}
	for i := range c.drops {
		s.Drops[i] = c.drops[i].Load()
	}
	return s
}
