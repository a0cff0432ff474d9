package engine

import (
	"errors"
	"sync/atomic"

	"github.com/warpmesh/warpmesh/codec"
)

// DropReason says why a received datagram was discarded.
type DropReason uint8

// Drop reasons, counted in Stats.Drops.
const (
	DropShort           DropReason = iota // shorter than a header
	DropBadMagic                          // not a Warp Mesh frame
	DropBadVersion                        // unknown wire version
	DropMalformed                         // header or payload fails validation
	DropWrongCluster                      // another mesh's frame
	DropOwn                               // our own frame (multicast loopback)
	DropOldEpoch                          // from an origin's earlier boot
	DropTooOld                            // sequence below the dedup window
	DropAuth                              // failed authentication
	DropUnauthenticated                   // no tag where a keyring requires one
	DropUnknownType                       // frame type this node does not handle
	numDropReasons
)

var dropNames = [numDropReasons]string{
	"short", "bad_magic", "bad_version", "malformed", "wrong_cluster", "own",
	"old_epoch", "too_old", "auth", "unauthenticated", "unknown_type",
}

// String names the reason as it appears in metrics.
func (r DropReason) String() string {
	if r < numDropReasons {
		return dropNames[r]
	}
	return "unknown"
}

// DropReasons lists every reason, in order, for exporters.
func DropReasons() []DropReason {
	rs := make([]DropReason, numDropReasons)
	for i := range rs {
		rs[i] = DropReason(i)
	}
	return rs
}

func dropReasonOf(err error) DropReason {
	switch {
	case errors.Is(err, codec.ErrShort):
		return DropShort
	case errors.Is(err, codec.ErrBadMagic):
		return DropBadMagic
	case errors.Is(err, codec.ErrBadVersion):
		return DropBadVersion
	default:
		return DropMalformed
	}
}

// Stats is a snapshot of a node's counters. Counters only grow.
type Stats struct {
	FramesSent, FramesReceived   uint64 // datagrams written / read
	RecordsSent, RecordsReceived uint64 // invalidations published / applied from others
	BytesSent, BytesReceived     uint64
	WriteSyscalls, ReadSyscalls  uint64 // sendmmsg / recvmmsg calls
	SendBatches                  uint64 // sender loop flushes
	Published                    uint64 // Invalidate calls accepted
	Relayed                      uint64 // frames forwarded for others
	DataFrames                   uint64 // DATA frames applied (first copies)
	Duplicates                   uint64 // DATA frames dropped as already applied
	HeartbeatsSent               uint64
	HeartbeatsReceived           uint64
	SendErrors                   uint64
	Drops                        [numDropReasons]uint64 // indexed by DropReason

	MembersAlive, MembersSuspect, MembersDead, MembersLeft int

	// Effective socket buffer sizes granted by the kernel.
	RecvBuffer, SendBuffer int
}

// Dropped returns the total of Drops.
func (s *Stats) Dropped() uint64 {
	var t uint64
	for _, d := range s.Drops {
		t += d
	}
	return t
}

type counters struct {
	framesSent, framesReceived   atomic.Uint64
	recordsSent, recordsReceived atomic.Uint64
	bytesSent, bytesReceived     atomic.Uint64
	writeSyscalls, readSyscalls  atomic.Uint64
	sendBatches                  atomic.Uint64
	published                    atomic.Uint64
	relayed                      atomic.Uint64
	dataFrames                   atomic.Uint64
	duplicates                   atomic.Uint64
	heartbeatsSent               atomic.Uint64
	heartbeatsReceived           atomic.Uint64
	sendErrors                   atomic.Uint64
	drops                        [numDropReasons]atomic.Uint64
}

func (c *counters) drop(r DropReason) { c.drops[r].Add(1) }

func (c *counters) snapshot(s *Stats) {
	s.FramesSent = c.framesSent.Load()
	s.FramesReceived = c.framesReceived.Load()
	s.RecordsSent = c.recordsSent.Load()
	s.RecordsReceived = c.recordsReceived.Load()
	s.BytesSent = c.bytesSent.Load()
	s.BytesReceived = c.bytesReceived.Load()
	s.WriteSyscalls = c.writeSyscalls.Load()
	s.ReadSyscalls = c.readSyscalls.Load()
	s.SendBatches = c.sendBatches.Load()
	s.Published = c.published.Load()
	s.Relayed = c.relayed.Load()
	s.DataFrames = c.dataFrames.Load()
	s.Duplicates = c.duplicates.Load()
	s.HeartbeatsSent = c.heartbeatsSent.Load()
	s.HeartbeatsReceived = c.heartbeatsReceived.Load()
	s.SendErrors = c.sendErrors.Load()
	for i := range c.drops {
		s.Drops[i] = c.drops[i].Load()
	}
}
