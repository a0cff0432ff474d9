package bridge

import (
	"sync"
	"time"
)

// Import: the NATS → mesh half.
//
// A batch is checked whole (ValidateBatch) before anything in it is used,
// so a malformed message is dropped and counted, never half applied. Then
// its stream — (mesh, exporting bridge, that bridge's epoch) — is tracked,
// and its records are deduplicated and, on the bridge that imports for its
// mesh, published into the mesh with the key viewed straight from the NATS
// message (the engine's ring takes the only copy).
//
// Ordering is not promised; coherence is. Whenever the bridge cannot
// account for a remote mesh's stream it flushes its own mesh (see
// FlushReason): a skipped batch sequence, an exporter's loss flag, a
// remote stream that starts past its beginning or restarts while no
// sibling stream of its mesh covered the interval, a mesh whose last live
// stream goes silent for StreamTimeout (then nothing more of it can
// arrive), and, in core NATS mode, this bridge's own lost or restored
// connection. With JetStream a lost connection or a restart replays from
// the durable consumer's ack floor instead.

// streamKey names a remote exporter.
type streamKey struct {
	mesh   uint32
	bridge uint64
}

// stream is what the importer knows of one remote exporter.
type stream struct {
	epoch  uint64 // the exporter's boot epoch
	next   uint64 // the batch sequence expected next
	first  int64  // when this epoch was first heard (unix ns)
	last   int64  // last batch (unix ns)
	lossAt int64  // last gap or loss flag on it (unix ns), 0 none
	dead   bool   // silent for StreamTimeout, or said Bye
	resync bool   // accept any next sequence once (after a reconnect)
}

// meshState is what the importer knows of one remote mesh.
type meshState struct {
	name string
	live bool // some stream of it is live
}

type importer struct {
	b *Bridge

	mu          sync.Mutex
	meshIndex   map[string]uint32
	meshes      []meshState
	streams     map[streamKey]*stream
	dd          *dedup
	resyncUntil int64 // streams first heard before this may start mid-way
	started     int64
}

func (im *importer) init(b *Bridge, now time.Time) {
	im.b = b
	im.meshIndex = make(map[string]uint32)
	im.streams = make(map[streamKey]*stream)
	im.dd = newDedup(b.cfg.DedupFrames)
	im.started = now.UnixNano()
	im.resyncUntil = now.Add(b.cfg.StreamTimeout).UnixNano()
}

// handle takes one NATS message on a batch subject. data is valid only
// during the call; nothing retains it. Returns whether the batch was
// accepted (JetStream acknowledges either way: a bad batch stays bad).
func (im *importer) handle(subject string, data []byte) bool {
	b := im.b
	mesh, ok := b.cfg.meshOfSubject(subject)
	if !ok {
		b.ctr.drops[DropBadSubject].Add(1)
		return false
	}
	if mesh == b.cfg.Name {
		b.ctr.drops[DropOwnMesh].Add(1)
		return false
	}
	h, off, err := ValidateBatch(data)
	if err != nil {
		b.ctr.drops[dropReasonOf(err)].Add(1)
		return false
	}
	if h.Flags&FlagPresence != 0 {
		b.ctr.drops[DropMalformed].Add(1)
		return false
	}
	if string(h.Mesh) != mesh {
		b.ctr.drops[DropWrongMesh].Add(1)
		return false
	}
	now := time.Now().UnixNano()
	im.mu.Lock()
	mi, ok := im.meshOf(mesh)
	if !ok {
		im.mu.Unlock()
		b.ctr.drops[DropTooManyStreams].Add(1)
		b.flush(FlushOverflow) // a valid batch went unapplied
		return false
	}
	flush, reason, verdict := im.track(mi, &h, now)
	if verdict != DropReason(numDropReasons) {
		im.mu.Unlock()
		b.ctr.drops[verdict].Add(1)
		if verdict == DropTooManyStreams {
			b.flush(FlushOverflow) // a valid batch went unapplied
		}
		return false
	}
	b.ctr.importBatches.Add(1)
	b.ctr.importBytes.Add(uint64(len(data)))
	im.apply(mi, data[off:], h.Groups)
	im.mu.Unlock()
	if flush {
		b.flush(reason)
	}
	return true
}

// apply deduplicates and publishes the groups of a validated batch. Caller
// holds mu. Does not allocate.
func (im *importer) apply(mi uint32, body []byte, groups int) {
	b := im.b
	// In core mode every bridge of a mesh hears every batch and only the
	// leader publishes; in JetStream mode only the leader consumes, and
	// what it was delivered must be published even if it has just stood
	// down (it is acknowledged either way).
	leader := b.js != nil || b.leader.Load()
	var dups, standby, imported uint64
	for range groups {
		g, n, _ := ParseGroup(body) // validated
		body = body[n:]
		id := frameID{mesh: mi, origin: g.Origin, epoch: g.Epoch, seq: g.Seq}
		next := im.dd.next(id)
		for i := range uint32(g.Count) {
			key, prefix, n, _ := ParseRecord(body)
			body = body[n:]
			if uint32(g.First)+i < next {
				dups++
				continue
			}
			if !leader {
				standby++
				continue
			}
			if err := b.node.Publish(b.ctx, key, prefix); err != nil {
				return // closing
			}
			imported++
		}
		if uint32(g.First) <= next {
			im.dd.advance(id, uint32(g.First)+uint32(g.Count))
		}
	}
	b.ctr.duplicates.Add(dups)
	b.ctr.standby.Add(standby)
	b.ctr.imported.Add(imported)
}

// meshOf interns a remote mesh name. Caller holds mu.
func (im *importer) meshOf(name string) (uint32, bool) {
	if i, ok := im.meshIndex[name]; ok {
		return i, true
	}
	if len(im.meshes) >= im.b.cfg.MaxStreams {
		return 0, false
	}
	i := uint32(len(im.meshes))
	im.meshIndex[name] = i
	im.meshes = append(im.meshes, meshState{name: name})
	return i, true
}

// track updates the stream of h and decides whether the batch is stale
// (verdict is a drop reason) or calls for a flush. Caller holds mu.
func (im *importer) track(mi uint32, h *BatchHeader, now int64) (flush bool, reason FlushReason, verdict DropReason) {
	verdict = DropReason(numDropReasons) // accepted
	need := func(r FlushReason) {
		if !flush {
			flush, reason = true, r
		}
	}
	k := streamKey{mesh: mi, bridge: h.Bridge}
	st := im.streams[k]
	ms := &im.meshes[mi]
	switch {
	case st == nil:
		if len(im.streams) >= im.b.cfg.MaxStreams && !im.evictDead() {
			return false, 0, DropTooManyStreams
		}
		st = &stream{epoch: h.Stream, first: now}
		im.streams[k] = st
		if h.Seq != 1 && now >= im.resyncUntil {
			need(FlushStreamStart) // its beginning never reached us
		}
		if !ms.live && now >= im.resyncUntil && !im.covered(mi, h.Bridge, now) {
			need(FlushStreamStart) // a mesh newly bridged: its past was never exported
		}
	case h.Stream < st.epoch:
		return false, 0, DropStaleBatch // an earlier boot of that bridge
	case h.Stream > st.epoch:
		// The exporter restarted: what its mesh published while it was
		// down reached us only if a sibling stream was live throughout.
		if !im.covered(mi, h.Bridge, st.last) || (h.Seq != 1 && !st.resync) {
			need(FlushStreamStart)
		}
		*st = stream{epoch: h.Stream, first: now}
	case h.Seq < st.next:
		return false, 0, DropStaleBatch // replayed or duplicated
	case h.Seq > st.next && !st.resync:
		need(FlushGap)
		st.lossAt = now
	}
	if st.dead {
		// Back after a silence in which its mesh may have been flushed:
		// its coverage of that mesh starts again now.
		st.dead, st.first = false, now
		if !ms.live {
			need(FlushStreamStart)
		}
	}
	st.next, st.last, st.resync = h.Seq+1, now, false
	if h.Flags&FlagLoss != 0 {
		need(FlushLossFlag)
		st.lossAt = now
	}
	ms.live = true
	if h.Flags&FlagBye != 0 {
		st.dead = true
		if im.meshSilent(mi) {
			ms.live = false
			need(FlushStreamTimeout) // nothing of that mesh is exported now
		}
	}
	return flush, reason, verdict
}

// covered reports whether a stream of mesh mi other than except has been
// live, without a gap or loss flag, since since. Caller holds mu.
func (im *importer) covered(mi uint32, except uint64, since int64) bool {
	for k, st := range im.streams {
		if k.mesh == mi && k.bridge != except && !st.dead && st.first <= since && st.lossAt < since {
			return true
		}
	}
	return false
}

// meshSilent reports whether no stream of mesh mi is live. Caller holds mu.
func (im *importer) meshSilent(mi uint32) bool {
	for k, st := range im.streams {
		if k.mesh == mi && !st.dead {
			return false
		}
	}
	return true
}

// evictDead removes the dead stream heard longest ago. Caller holds mu.
func (im *importer) evictDead() bool {
	var victim streamKey
	oldest := int64(-1)
	for k, st := range im.streams {
		if st.dead && (oldest < 0 || st.last < oldest) {
			victim, oldest = k, st.last
		}
	}
	if oldest < 0 {
		return false
	}
	delete(im.streams, victim)
	return true
}

// expire marks streams silent for StreamTimeout dead and reports the
// first flush reason it calls for (a mesh whose last live stream died).
func (im *importer) expire(now time.Time) (flush bool) {
	cut := now.Add(-im.b.cfg.StreamTimeout).UnixNano()
	im.mu.Lock()
	defer im.mu.Unlock()
	for _, st := range im.streams {
		if !st.dead && st.last < cut {
			st.dead = true
		}
	}
	for i := range im.meshes {
		if ms := &im.meshes[i]; ms.live && im.meshSilent(uint32(i)) {
			ms.live = false
			flush = true
		}
	}
	return flush
}

// resync makes every stream accept its next sequence as is, and streams
// first heard within StreamTimeout start mid-way without a flush: after a
// reconnect in core mode, which flushes once for everything missed.
func (im *importer) resync(now time.Time) {
	im.mu.Lock()
	for _, st := range im.streams {
		st.resync = true
	}
	im.resyncUntil = now.Add(im.b.cfg.StreamTimeout).UnixNano()
	im.mu.Unlock()
}

// snapshot fills the stream counts of s.
func (im *importer) snapshot(s *Stats) {
	im.mu.Lock()
	s.Streams = len(im.streams)
	for _, ms := range im.meshes {
		if ms.live {
			s.Meshes++
		}
	}
	im.mu.Unlock()
}
