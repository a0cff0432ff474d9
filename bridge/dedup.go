package bridge

// Deduplication of imported records.
//
// Every bridge of a mesh exports everything it hears, so a remote mesh
// with two bridges sends each invalidation twice, in batches cut at
// different places. A record is named by (mesh, origin, epoch, frame
// sequence, index in the frame): the mesh frame that carried it, and its
// place in that frame. The importer keeps, per frame, how many of the
// frame's records it has applied from the start (every exporter sends a
// frame's records in order, from index 0, possibly split over batches), so
// a record whose index is below that mark is a duplicate.
//
// The table is bounded: two generations of at most cap frames each. Inserts
// go into the current generation; when it is full, the older one is
// cleared (its memory is kept) and the two swap. Lookups see both, so a
// frame is remembered for between cap and 2×cap frames of traffic — the
// second copy of a frame arrives milliseconds after the first, far inside
// that. A frame forgotten and then seen again is applied again: an extra
// invalidation, never a missed one.
type dedup struct {
	cur, old map[frameID]uint32
	cap      int
}

// frameID names one frame of one origin in one mesh.
type frameID struct {
	mesh               uint32 // index in the importer's mesh table
	origin, epoch, seq uint64
}

func newDedup(cap int) *dedup {
	return &dedup{cur: make(map[frameID]uint32, cap), old: make(map[frameID]uint32, cap), cap: cap}
}

// next returns how many records of id have been applied from index 0.
func (d *dedup) next(id frameID) uint32 {
	if n, ok := d.cur[id]; ok {
		return n
	}
	return d.old[id]
}

// advance records that the records of id below through have been applied.
// It never lowers the mark. Does not allocate in steady state (a cleared
// map keeps its buckets).
func (d *dedup) advance(id frameID, through uint32) {
	if n, ok := d.cur[id]; ok {
		if through > n {
			d.cur[id] = through
		}
		return
	}
	if n := d.old[id]; n > through {
		through = n
	}
	if len(d.cur) >= d.cap {
		clear(d.old)
		d.cur, d.old = d.old, d.cur
	}
	d.cur[id] = through
}

// len returns the frames remembered.
func (d *dedup) len() int { return len(d.cur) + len(d.old) }
