package swim

// The update queue: what this node has to tell the mesh about members,
// piggybacked on every probe frame it sends. Each member has at most one
// queued update (a newer one replaces it, sent count reset); a frame takes
// the least-sent updates first, so news spreads before repetition, and an
// update retires after limit sends. A frame's selection scans the queue
// once per send level: the queue is empty in steady state and at most the
// member count during a join wave, and the levels are few (limit is about
// RetransmitMult·log10 N), so a sorted structure would buy nothing.

type queued struct {
	u     Update
	sent  int    // frames it went out in
	frame uint64 // the last take that sent it
}

type queue struct {
	items []queued
	at    map[uint64]int32 // member id → index in items
	frame uint64           // takes so far
}

func (q *queue) init() { q.at = make(map[uint64]int32) }

// push queues u, replacing any update queued about the same member.
func (q *queue) push(u Update) {
	if i, ok := q.at[u.ID]; ok {
		q.items[i] = queued{u: u}
		return
	}
	q.at[u.ID] = int32(len(q.items))
	q.items = append(q.items, queued{u: u})
}

// drop removes the update queued about id, if any.
func (q *queue) drop(id uint64) {
	i, ok := q.at[id]
	if !ok {
		return
	}
	q.removeAt(int(i))
}

func (q *queue) removeAt(i int) {
	last := len(q.items) - 1
	delete(q.at, q.items[i].u.ID)
	if i != last {
		q.items[i] = q.items[last]
		q.at[q.items[i].u.ID] = int32(i)
	}
	q.items = q.items[:last]
}

// take appends up to max updates to dst, least-sent first, counting a
// send for each and retiring those sent limit times. It does not allocate
// when dst has the room.
func (q *queue) take(dst []Update, max, limit int) []Update {
	if max <= 0 || len(q.items) == 0 {
		return dst
	}
	q.frame++
	start := len(dst)
	for level := 0; level < limit && len(dst)-start < max; level++ {
		for i := 0; i < len(q.items) && len(dst)-start < max; i++ {
			if it := &q.items[i]; it.sent == level && it.frame != q.frame {
				dst = append(dst, it.u)
				it.sent++
				it.frame = q.frame
			}
		}
	}
	for i := len(q.items) - 1; i >= 0; i-- {
		if q.items[i].sent >= limit {
			q.removeAt(i)
		}
	}
	return dst
}

// len is the number of updates queued.
func (q *queue) len() int { return len(q.items) }
