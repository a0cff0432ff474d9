package bridge

import (
	"sync"
	"time"

	"github.com/warpmesh/warpmesh/engine"
)

// Export: the mesh → NATS half.
//
// The engine calls onInvalidate on its receive goroutine for every
// invalidation applied from another member. It appends a record to the
// open batch buffer (one copy of the key, from the engine's frame into the
// buffer that NATS sends) and returns. One publisher goroutine takes
// whatever is ready — the oldest full batch, else the open one — stamps
// its sequence and flags, hands it to NATS and returns the buffer to the
// free list. That is natural batching: at low load each invalidation
// leaves at once in a batch of one; under load the open batch fills while
// the previous one is being written. No timer ever waits for a batch to
// fill; the only timer sends an empty keep-alive batch after KeepAlive of
// silence, so importers can tell an idle mesh from a cut-off one.
//
// The engine applies a frame's records consecutively on one goroutine
// (under its receive lock), so the exporter numbers a frame's records by
// counting while (origin, epoch, seq) stays the same. That index is what
// lets importers deduplicate the copies several bridges send.

// exportBuf is one batch under construction. Its header is written at
// reset; seq, flags and the group count are patched at publish.
type exportBuf struct {
	b      []byte
	groups int
	open   int // offset of the open group's header; -1 when none
	count  int // records in the open group
	og     Group
	keys   int
}

func (e *exportBuf) reset(hdr []byte) {
	e.b = append(e.b[:0], hdr...)
	e.groups, e.open, e.count, e.keys = 0, -1, 0, 0
}

// add appends one record, continuing the open group when the record is
// the next of the same frame. It reports false, appending nothing, when
// the record does not fit in max bytes. Does not allocate.
func (e *exportBuf) add(origin, epoch, seq uint64, idx uint16, key []byte, prefix bool, max int) bool {
	need := RecordHeaderLen + len(key)
	cont := e.open >= 0 && e.og.Origin == origin && e.og.Epoch == epoch && e.og.Seq == seq &&
		int(e.og.First)+e.count == int(idx) && e.count < 1<<16-1
	if !cont {
		need += GroupHeaderLen
		if e.groups == 1<<16-1 {
			return false
		}
	}
	if len(e.b)+need > max {
		return false
	}
	if !cont {
		e.closeGroup()
		e.og = Group{Origin: origin, Epoch: epoch, Seq: seq, First: idx}
		e.open = len(e.b)
		e.b = appendGroupHeader(e.b, &e.og)
		e.groups++
	}
	e.b = appendRecord(e.b, key, prefix)
	e.count++
	e.keys++
	return true
}

func (e *exportBuf) closeGroup() {
	if e.open >= 0 {
		setGroupCount(e.b, e.open, e.count)
		e.open, e.count = -1, 0
	}
}

// publishFunc hands one finished batch to NATS. b is reused once it
// returns.
type publishFunc func(b []byte, seq uint64) error

type exporter struct {
	b   *Bridge
	max int
	hdr []byte // header template (seq, flags, groups zero)

	mu      sync.Mutex
	cur     *exportBuf   // open batch; nil when every buffer is queued
	full    []*exportBuf // FIFO of full batches
	free    []*exportBuf
	idle    bool // publisher is parked and needs a wake-up
	loss    bool // FlagLoss on the next batch
	closing bool
	lastO   uint64 // frame being numbered
	lastE   uint64
	lastS   uint64
	idx     uint16

	wake  chan struct{} // cap 1: publisher wake-up
	freed chan struct{} // cap 1: a buffer came back
	empty exportBuf     // keep-alive and Bye batches
	seq   uint64        // owned by the publisher
	pub   publishFunc
	done  chan struct{}
}

func (x *exporter) init(b *Bridge, id, epoch uint64, pub publishFunc) {
	x.b, x.max, x.pub = b, b.cfg.MaxBatchBytes, pub
	x.hdr = AppendBatchHeader(nil, &BatchHeader{Bridge: id, Stream: epoch, Mesh: []byte(b.cfg.Name)})
	for range b.cfg.ExportQueue + 1 {
		e := &exportBuf{b: make([]byte, 0, x.max)}
		x.free = append(x.free, e)
	}
	x.full = make([]*exportBuf, 0, b.cfg.ExportQueue+1)
	x.cur = x.take()
	x.wake = make(chan struct{}, 1)
	x.freed = make(chan struct{}, 1)
	x.empty.b = make([]byte, 0, len(x.hdr))
	x.done = make(chan struct{})
}

// take pops a free buffer, reset; nil when none. Caller holds mu.
func (x *exporter) take() *exportBuf {
	n := len(x.free)
	if n == 0 {
		return nil
	}
	e := x.free[n-1]
	x.free = x.free[:n-1]
	e.reset(x.hdr)
	return e
}

// onInvalidate is the engine handler. inv.Key is copied into the batch.
// Does not allocate.
func (x *exporter) onInvalidate(inv engine.Invalidation) {
	if IsBridgeID(inv.Origin) {
		// Imported by a bridge of this mesh (this one never hears its
		// own): it came from another mesh and must not go back out.
		x.b.ctr.notReexported.Add(1)
		return
	}
	x.mu.Lock()
	if inv.Origin == x.lastO && inv.Epoch == x.lastE && inv.Seq == x.lastS {
		x.idx++
	} else {
		x.lastO, x.lastE, x.lastS, x.idx = inv.Origin, inv.Epoch, inv.Seq, 0
	}
	for !x.closing {
		if x.cur != nil && x.cur.add(inv.Origin, inv.Epoch, inv.Seq, x.idx, inv.Key, inv.Prefix, x.max) {
			break // counted per batch, in send
		}
		if x.cur != nil { // full: queue it, open another
			if x.cur.keys == 0 {
				break // cannot happen: MinBatchBytes holds any record
			}
			x.cur.closeGroup()
			x.full = append(x.full, x.cur)
			x.cur = x.take()
			x.wakeLocked()
			continue
		}
		if x.cur == nil && !x.waitFree() {
			x.b.ctr.exportOverflow.Add(1)
			x.loss = true
			break
		}
	}
	if x.closing {
		x.loss = true // before init or after close: not exported
	}
	x.wakeLocked()
	x.mu.Unlock()
}

// waitFree waits up to ExportWait for a buffer to come back, with mu held
// on entry and exit. It allocates a timer only on this overload path.
func (x *exporter) waitFree() bool {
	deadline := time.Now().Add(x.b.cfg.ExportWait)
	for x.cur == nil && !x.closing {
		left := time.Until(deadline)
		if left <= 0 {
			return false
		}
		x.mu.Unlock()
		t := time.NewTimer(left)
		select {
		case <-x.freed:
		case <-t.C:
		}
		t.Stop()
		x.mu.Lock()
		if x.cur == nil {
			x.cur = x.take()
		}
	}
	return x.cur != nil
}

// wakeLocked wakes a parked publisher. Caller holds mu.
func (x *exporter) wakeLocked() {
	if x.idle {
		x.idle = false
		select {
		case x.wake <- struct{}{}:
		default:
		}
	}
}

// flagLoss marks the next batch with FlagLoss and makes sure one leaves.
func (x *exporter) flagLoss() {
	x.mu.Lock()
	x.loss = true
	x.idle = true // force a wake-up even if the publisher is running
	x.wakeLocked()
	x.mu.Unlock()
}

// run is the publisher loop.
func (x *exporter) run() {
	defer close(x.done)
	ka := time.NewTimer(x.b.cfg.KeepAlive)
	defer ka.Stop()
	for {
		x.mu.Lock()
		var out *exportBuf
		switch {
		case len(x.full) > 0:
			out = x.full[0]
			copy(x.full, x.full[1:])
			x.full = x.full[:len(x.full)-1]
		case x.cur != nil && x.cur.keys > 0:
			out = x.cur
			out.closeGroup()
			x.cur = x.take()
		}
		loss := x.loss
		closing := x.closing
		if out == nil && !loss {
			if closing {
				x.mu.Unlock()
				x.sendEmpty(FlagBye)
				return
			}
			x.idle = true
			x.mu.Unlock()
			select {
			case <-x.wake:
			case <-ka.C:
				x.sendEmpty(0)
				ka.Reset(x.b.cfg.KeepAlive)
			}
			continue
		}
		x.loss = false
		x.mu.Unlock()
		var flags BatchFlags
		if loss {
			flags = FlagLoss
			x.b.ctr.lossFlagsSent.Add(1)
		}
		if out == nil {
			x.sendEmpty(flags)
		} else {
			if x.send(out.b, out.groups, flags) {
				x.b.ctr.exported.Add(uint64(out.keys))
			}
			x.mu.Lock()
			x.free = append(x.free, out)
			if x.cur == nil {
				x.cur = x.take()
			}
			x.mu.Unlock()
			select {
			case x.freed <- struct{}{}:
			default:
			}
		}
		ka.Reset(x.b.cfg.KeepAlive)
	}
}

func (x *exporter) sendEmpty(flags BatchFlags) {
	x.empty.reset(x.hdr)
	x.send(x.empty.b, 0, flags)
}

// send stamps and publishes one batch. A failed publish flags the loss on
// the next batch: the far side flushes rather than trusting the stream.
func (x *exporter) send(b []byte, groups int, flags BatchFlags) (ok bool) {
	x.seq++
	setBatchSeq(b, x.seq)
	setBatchFlags(b, flags)
	setBatchGroups(b, groups)
	if err := x.pub(b, x.seq); err != nil {
		x.b.ctr.exportErrors.Add(1)
		x.mu.Lock()
		x.loss = true
		x.mu.Unlock()
		if x.b.lim.allow() {
			x.b.log.Warn("bridge: publish to NATS failed; the next batch carries a loss flag", "err", err)
		}
		return false
	}
	x.b.ctr.exportBatches.Add(1)
	x.b.ctr.exportBytes.Add(uint64(len(b)))
	return true
}

// close sends what is queued and a Bye batch, then stops the publisher.
func (x *exporter) close() {
	x.mu.Lock()
	x.closing = true
	x.idle = true
	x.wakeLocked()
	x.mu.Unlock()
	<-x.done
}
