package bridge

import (
	"errors"
	"sync/atomic"
)

// DropReason says why a NATS message was dropped unapplied.
type DropReason uint8

// Drop reasons.
const (
	DropShort          DropReason = iota // shorter than a batch header
	DropBadMagic                         // not a batch
	DropBadVersion                       // unknown batch version
	DropMalformed                        // header, group or record fails validation
	DropWrongMesh                        // the batch names another mesh than its subject
	DropOwnMesh                          // a batch of this bridge's own mesh (a loop)
	DropBadSubject                       // a subject outside the bridge's scheme
	DropStaleBatch                       // a batch sequence already seen on its stream
	DropTooManyStreams                   // stream table full
	numDropReasons
)

var dropNames = [numDropReasons]string{
	"short", "bad_magic", "bad_version", "malformed", "wrong_mesh", "own_mesh",
	"bad_subject", "stale_batch", "too_many_streams",
}

// String returns the reason's metric label, e.g. "bad_magic".
func (r DropReason) String() string {
	if r < numDropReasons {
		return dropNames[r]
	}
	return "unknown"
}

// DropReasons lists every drop reason, in order.
func DropReasons() []DropReason {
	rs := make([]DropReason, numDropReasons)
	for i := range rs {
		rs[i] = DropReason(i)
	}
	return rs
}

func dropReasonOf(err error) DropReason {
	switch {
	case errors.Is(err, ErrShort):
		return DropShort
	case errors.Is(err, ErrBadMagic):
		return DropBadMagic
	case errors.Is(err, ErrBadVersion):
		return DropBadVersion
	}
	return DropMalformed
}

// FlushReason says why a bridge flushed its own mesh (Node.DeclareLoss:
// every member raises a Gap and presets empty their caches).
type FlushReason uint8

// Flush reasons.
const (
	FlushGap           FlushReason = iota // a batch sequence was skipped on a remote stream
	FlushLossFlag                         // a remote exporter flagged a possible loss
	FlushStreamStart                      // a remote stream began past its first batch, or a remote bridge restarted uncovered
	FlushStreamTimeout                    // a remote mesh's last live stream went silent
	FlushDisconnect                       // this bridge lost its NATS connection
	FlushDisconnected                     // still cut off from NATS: one flush per StreamTimeout (core mode)
	FlushReconnect                        // this bridge's NATS connection came back
	FlushTakeover                         // this bridge became its mesh's importer
	FlushSlowConsumer                     // NATS dropped messages for this bridge
	FlushOverflow                         // a valid batch was dropped: the stream or mesh table was full
	numFlushReasons
)

var flushNames = [numFlushReasons]string{
	"gap", "loss_flag", "stream_start", "stream_timeout", "disconnect", "disconnected", "reconnect",
	"takeover", "slow_consumer", "overflow",
}

// String returns the reason's metric label, e.g. "stream_timeout".
func (r FlushReason) String() string {
	if r < numFlushReasons {
		return flushNames[r]
	}
	return "unknown"
}

// FlushReasons lists every flush reason, in order.
func FlushReasons() []FlushReason {
	rs := make([]FlushReason, numFlushReasons)
	for i := range rs {
		rs[i] = FlushReason(i)
	}
	return rs
}

// Stats is a snapshot of a bridge's counters.
type Stats struct {
	// Export: this mesh → NATS.
	Exported       uint64 // invalidations sent to NATS (counted once their batch is handed to NATS)
	ExportBatches  uint64 // NATS messages sent (keep-alives included)
	ExportBytes    uint64
	NotReexported  uint64 // invalidations another bridge imported, not sent back out
	ExportOverflow uint64 // invalidations dropped because the export queue stayed full (a loss flag follows)
	ExportErrors   uint64 // NATS publish errors (a loss flag follows)
	LossFlagsSent  uint64 // batches sent with FlagLoss

	// Import: NATS → this mesh.
	Imported         uint64 // invalidations published into this mesh
	ImportBatches    uint64 // NATS messages accepted
	ImportBytes      uint64
	Duplicates       uint64 // records already applied (another bridge's copy, a replay)
	Standby          uint64 // records not published because another bridge of this mesh imports
	Drops            [numDropReasons]uint64
	Flushes          [numFlushReasons]uint64
	FlushesCoalesced uint64 // flush requests covered by one already queued
	LossesDeclared   uint64 // Node.DeclareLoss calls made (each a Gap in the mesh)

	// State.
	Leader    bool // this bridge imports for its mesh
	Connected bool // the NATS connection is up
	Streams   int  // remote streams tracked
	Meshes    int  // remote meshes with a live stream
}

// Dropped sums Drops.
func (s Stats) Dropped() uint64 {
	var t uint64
	for _, d := range s.Drops {
		t += d
	}
	return t
}

// Flushed sums Flushes.
func (s Stats) Flushed() uint64 {
	var t uint64
	for _, f := range s.Flushes {
		t += f
	}
	return t
}

type counters struct {
	exported, exportBatches, exportBytes, notReexported atomic.Uint64
	exportOverflow, exportErrors, lossFlagsSent         atomic.Uint64
	imported, importBatches, importBytes, duplicates    atomic.Uint64
	standby, coalesced, declared                        atomic.Uint64
	drops                                               [numDropReasons]atomic.Uint64
	flushes                                             [numFlushReasons]atomic.Uint64
}

func (c *counters) snapshot(s *Stats) {
	s.Exported, s.ExportBatches, s.ExportBytes = c.exported.Load(), c.exportBatches.Load(), c.exportBytes.Load()
	s.NotReexported, s.ExportOverflow = c.notReexported.Load(), c.exportOverflow.Load()
	s.ExportErrors, s.LossFlagsSent = c.exportErrors.Load(), c.lossFlagsSent.Load()
	s.Imported, s.ImportBatches, s.ImportBytes = c.imported.Load(), c.importBatches.Load(), c.importBytes.Load()
	s.Duplicates, s.Standby, s.FlushesCoalesced = c.duplicates.Load(), c.standby.Load(), c.coalesced.Load()
	s.LossesDeclared = c.declared.Load()
	for i := range c.drops {
		s.Drops[i] = c.drops[i].Load()
	}
	for i := range c.flushes {
		s.Flushes[i] = c.flushes[i].Load()
	}
}
