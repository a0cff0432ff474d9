package engine

import (
	"errors"
	"math/bits"
	"sync/atomic"
	"time"

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
	DropReplay                            // control frame seen before (replay window)
	DropUnknownMember                     // control frame from a node that is not a validated member
	DropTooManyOrigins                    // origin table full
	DropBadCookie                         // RESPONSE with a cookie this node did not issue, or expired
	DropUnvalidated                       // needs a validated address first (a new epoch of a member)
	DropImplausible                       // packet number out of reach of the member's last one
	DropForged                            // LEAVE not from the member's validated address
	DropTreeRefused                       // IHAVE, GRAFT or PRUNE outside a relay tree, about an unknown origin or epoch, or past a table's cap; an ACK on another origin's stream not from our tree child for it
	numDropReasons
)

var dropNames = [numDropReasons]string{
	"short", "bad_magic", "bad_version", "malformed", "wrong_cluster", "own",
	"old_epoch", "too_old", "auth", "unauthenticated", "unknown_type",
	"replay", "unknown_member", "too_many_origins",
	"bad_cookie", "unvalidated", "implausible", "forged", "tree_refused",
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

	// Loss repair.
	GapsDetected           uint64                // sequences noticed missing, each once (also those given up before any NACK)
	GapsRepaired           uint64                // missing sequences that arrived (retransmission or late copy)
	GapsGivenUp            [numGapReasons]uint64 // Gap events, indexed by the reason of their first range
	FramesLost             uint64                // sequences covered by Gap events
	NacksSent              uint64
	NacksReceived          uint64
	Retransmitted          uint64 // frames resent in answer to NACKs
	RetransmitsReceived    uint64 // retransmitted frames applied
	RepairsServed          uint64 // others' DATA frames resent from the relay ring in answer to NACKs (relay trees)
	IHavesSent, GraftsSent uint64 // relay-tree healing (plumtree.go): IHAVE frames and GRAFT entries sent
	PrunesSent             uint64 // PRUNE entries sent for duplicates from a sender other than the tree parent
	GraftsAdopted          uint64 // members that repaired from us as their tree parent, made eager children (our trees disagreed)
	HWMSent, HWMReceived   uint64
	AcksSent, AcksReceived uint64           // flow-control progress reports
	FlowWaits              uint64           // sender waits for receivers to catch up
	FlowTimeouts           uint64           // waits that ended by timeout, not by an ACK
	RepairLatency          LatencyHistogram // gap opened → gap closed
	// GapsNotOwed counts sequences noticed missing that a JOIN answer then
	// showed were sent before this node was in the origin's fan-out. The
	// repair counters add up: GapsDetected = GapsRepaired + FramesLost +
	// GapsNotOwed, once no gap is open.
	GapsNotOwed     uint64
	JoinAsksSent    uint64 // JOIN asks sent while not ready
	JoinAnswersSent uint64 // JOIN answers sent to members asking
	// JoinMarksAsked counts marks requests sent while not ready;
	// JoinMarksAnswered, answers sent to members asking (JoinMarksRefused,
	// those over the answer budget); MarksUsed, origin streams started
	// (after readiness) from a member's mark instead of seq 1 (marks.go).
	JoinMarksAsked, JoinMarksAnswered, JoinMarksRefused, MarksUsed uint64
	// SyncDigestsSent counts periodic push-pulls begun with a summary of
	// the table (SYNC digest) instead of the table; SyncDigestsAgreed,
	// digests received that matched this node's table, so no table was
	// sent either way.
	SyncDigestsSent, SyncDigestsAgreed uint64
	Ready                              bool // Node.Ready at the time of the snapshot
	// OriginsEvicted counts per-origin receive states forgotten to stay
	// within the origin table's caps (strangers first, then silent
	// non-members); Origins is the table's size now.
	OriginsEvicted uint64
	Origins        int

	MembersAlive, MembersSuspect, MembersDead, MembersLeft int

	// Address validation and table caps (issue 13).
	MembersUnvalidated                   int    // heard of, address not yet validated
	MembersEvicted                       uint64 // entries dropped to make room (MaxMembers, MaxUnvalidatedMembers)
	MembersRefused                       uint64 // validations refused: table full of live members, or a live member's id answering elsewhere
	ChallengesSent, ChallengesSuppressed uint64 // suppressed: credit or pacing said no
	ResponsesSent, ResponsesSuppressed   uint64 // suppressed: over responseRate
	Validations                          uint64 // RESPONSEs with a good cookie
	// Vouched counts members taken as validated on an authenticated
	// member's word (with a keyring: its digest, update or push-pull
	// named them), without a challenge of our own.
	Vouched uint64

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
	readSyscalls                 atomic.Uint64 // ReadBatch calls; sockets report their own
	sendBatches                  atomic.Uint64
	published                    atomic.Uint64
	relayed                      atomic.Uint64
	dataFrames                   atomic.Uint64
	duplicates                   atomic.Uint64
	heartbeatsSent               atomic.Uint64
	heartbeatsReceived           atomic.Uint64
	sendErrors                   atomic.Uint64
	drops                        [numDropReasons]atomic.Uint64

	gapsDetected, gapsRepaired atomic.Uint64
	gapsGivenUp                [numGapReasons]atomic.Uint64
	framesLost                 atomic.Uint64
	nacksSent, nacksReceived   atomic.Uint64
	retransmitted              atomic.Uint64
	retransmitsReceived        atomic.Uint64
	repairsServed              atomic.Uint64
	ihavesSent, graftsSent     atomic.Uint64
	prunesSent, graftsAdopted  atomic.Uint64
	hwmSent, hwmReceived       atomic.Uint64
	acksSent, acksReceived     atomic.Uint64
	flowWaits, flowTimeouts    atomic.Uint64
	repairLatency              latencyCounter
	gapsNotOwed                atomic.Uint64
	joinAsksSent               atomic.Uint64
	joinAnswersSent            atomic.Uint64
	marksAsksSent              atomic.Uint64
	marksAnswersSent           atomic.Uint64
	marksRefused               atomic.Uint64
	marksUsed                  atomic.Uint64
	syncDigests, syncAgreed    atomic.Uint64
	originsEvicted             atomic.Uint64
	origins                    atomic.Int64 // size of the receiver's origin table

	challengesSent, challengesSuppressed atomic.Uint64
	responsesSent, responsesSuppressed   atomic.Uint64
	validations                          atomic.Uint64
}

func (c *counters) drop(r DropReason) { c.drops[r].Add(1) }

func (c *counters) snapshot(s *Stats) {
	s.FramesSent = c.framesSent.Load()
	s.FramesReceived = c.framesReceived.Load()
	s.RecordsSent = c.recordsSent.Load()
	s.RecordsReceived = c.recordsReceived.Load()
	s.BytesSent = c.bytesSent.Load()
	s.BytesReceived = c.bytesReceived.Load()
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
	s.GapsDetected = c.gapsDetected.Load()
	s.GapsRepaired = c.gapsRepaired.Load()
	for i := range c.gapsGivenUp {
		s.GapsGivenUp[i] = c.gapsGivenUp[i].Load()
	}
	s.FramesLost = c.framesLost.Load()
	s.NacksSent = c.nacksSent.Load()
	s.NacksReceived = c.nacksReceived.Load()
	s.Retransmitted = c.retransmitted.Load()
	s.RetransmitsReceived = c.retransmitsReceived.Load()
	s.RepairsServed = c.repairsServed.Load()
	s.IHavesSent, s.GraftsSent, s.PrunesSent = c.ihavesSent.Load(), c.graftsSent.Load(), c.prunesSent.Load()
	s.GraftsAdopted = c.graftsAdopted.Load()
	s.HWMSent = c.hwmSent.Load()
	s.HWMReceived = c.hwmReceived.Load()
	s.AcksSent, s.AcksReceived = c.acksSent.Load(), c.acksReceived.Load()
	s.FlowWaits, s.FlowTimeouts = c.flowWaits.Load(), c.flowTimeouts.Load()
	c.repairLatency.snapshot(&s.RepairLatency)
	s.GapsNotOwed = c.gapsNotOwed.Load()
	s.JoinAsksSent, s.JoinAnswersSent = c.joinAsksSent.Load(), c.joinAnswersSent.Load()
	s.JoinMarksAsked, s.JoinMarksAnswered = c.marksAsksSent.Load(), c.marksAnswersSent.Load()
	s.JoinMarksRefused, s.MarksUsed = c.marksRefused.Load(), c.marksUsed.Load()
	s.SyncDigestsSent, s.SyncDigestsAgreed = c.syncDigests.Load(), c.syncAgreed.Load()
	s.OriginsEvicted = c.originsEvicted.Load()
	s.Origins = int(c.origins.Load())
	s.ChallengesSent, s.ChallengesSuppressed = c.challengesSent.Load(), c.challengesSuppressed.Load()
	s.ResponsesSent, s.ResponsesSuppressed = c.responsesSent.Load(), c.responsesSuppressed.Load()
	s.Validations = c.validations.Load()
}

// GapEvents returns the total number of Gap events raised.
func (s *Stats) GapEvents() uint64 {
	var t uint64
	for _, g := range s.GapsGivenUp {
		t += g
	}
	return t
}

const latencyBuckets = 32

// LatencyHistogram counts durations in power-of-two microsecond buckets:
// bucket i holds durations in [2^(i-1), 2^i) µs (bucket 0: under 1 µs).
type LatencyHistogram struct {
	Buckets [latencyBuckets]uint64
	Count   uint64
	Sum     time.Duration
	Max     time.Duration
}

// Quantile returns an upper bound of the q-quantile (0 < q <= 1), or 0
// with no samples.
func (h *LatencyHistogram) Quantile(q float64) time.Duration {
	if h.Count == 0 {
		return 0
	}
	rank := max(uint64(q*float64(h.Count)+0.5), 1)
	var seen uint64
	for i, c := range h.Buckets {
		seen += c
		if seen >= rank {
			return min(time.Duration(1<<i)*time.Microsecond, h.Max)
		}
	}
	return h.Max
}

type latencyCounter struct {
	buckets [latencyBuckets]atomic.Uint64
	count   atomic.Uint64
	sum     atomic.Int64
	max     atomic.Int64
}

func (c *latencyCounter) observe(d time.Duration) {
	us := uint64(d / time.Microsecond)
	i := min(bits.Len64(us), latencyBuckets-1)
	c.buckets[i].Add(1)
	c.count.Add(1)
	c.sum.Add(int64(d))
	for {
		m := c.max.Load()
		if int64(d) <= m || c.max.CompareAndSwap(m, int64(d)) {
			return
		}
	}
}

func (c *latencyCounter) snapshot(h *LatencyHistogram) {
	for i := range c.buckets {
		h.Buckets[i] = c.buckets[i].Load()
	}
	h.Count = c.count.Load()
	h.Sum = time.Duration(c.sum.Load())
	h.Max = time.Duration(c.max.Load())
}
