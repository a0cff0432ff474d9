package memnet

import (
	"net/netip"
	"sync"
	"time"
)

// scheduler holds delayed datagrams in a heap ordered by due time (ties in
// send order) and delivers them from one goroutine, started with the first
// delayed datagram, that sleeps on one reusable timer until the earliest
// is due. Buffers (MTU bytes each) come from a free list that grows to the
// largest number ever in flight, bounded by Config.MaxInFlight.
type scheduler struct {
	net   *Network
	start time.Time

	mu      sync.Mutex
	heap    []delayed
	free    [][]byte
	held    int // buffers allocated: in the heap, in free or being delivered
	busy    int // popped from the heap, not yet delivered
	seq     uint64
	running bool
	stopped bool
	wake    chan struct{}
	done    chan struct{}
	wg      sync.WaitGroup

	due []delayed // the run goroutine's batch
}

type delayed struct {
	at   int64 // due, on the network clock
	seq  uint64
	from *Endpoint
	to   netip.AddrPort
	buf  []byte
}

func (s *scheduler) init(n *Network) {
	s.net = n
	s.start = time.Now()
	s.wake = make(chan struct{}, 1)
	s.done = make(chan struct{})
}

// push queues a copy of b for delivery at at. Called from WriteBatch.
func (s *scheduler) push(from *Endpoint, b []byte, to netip.AddrPort, at int64) {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		from.ctr.drop(DropNoRoute)
		return
	}
	var buf []byte
	if k := len(s.free); k > 0 {
		buf = s.free[k-1]
		s.free = s.free[:k-1]
	} else {
		if s.held >= s.net.cfg.MaxInFlight {
			s.mu.Unlock()
			from.ctr.drop(DropSchedulerFull)
			return
		}
		buf = make([]byte, 0, s.net.cfg.MTU) // only while in-flight reaches a new high
		s.held++
	}
	s.seq++
	s.heapPush(delayed{at: at, seq: s.seq, from: from, to: to, buf: append(buf[:0], b...)})
	if s.heap[0].seq == s.seq { // new earliest: re-arm the timer
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
	if !s.running {
		s.running = true
		s.wg.Add(1)
		go s.run()
	}
	s.mu.Unlock()
}

func (s *scheduler) run() {
	defer s.wg.Done()
	n := s.net
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		s.mu.Lock()
		now := s.clock()
		s.due = s.due[:0]
		for len(s.heap) > 0 && s.heap[0].at <= now {
			s.due = append(s.due, s.heapPop())
		}
		s.busy = len(s.due)
		wait := time.Duration(-1)
		if len(s.heap) > 0 {
			wait = time.Duration(s.heap[0].at - now)
		}
		s.mu.Unlock()

		if len(s.due) > 0 {
			n.mu.RLock()
			for i := range s.due {
				d := &s.due[i]
				if _, cut := n.linkLocked(d.from.addr, d.to); cut {
					d.from.ctr.drop(DropPartition)
					continue
				}
				n.deliverLocked(d.from, d.buf, d.to)
			}
			n.mu.RUnlock()
			s.mu.Lock()
			for i := range s.due {
				s.free = append(s.free, s.due[i].buf[:0])
				s.due[i] = delayed{}
			}
			s.busy = 0
			s.mu.Unlock()
			continue // more may have come due meanwhile
		}
		if wait >= 0 {
			timer.Reset(wait)
		}
		select {
		case <-s.wake:
		case <-timer.C:
		case <-s.done:
			timer.Stop()
			return
		}
		timer.Stop()
	}
}

// stop ends the run goroutine and drops what is still in flight.
func (s *scheduler) stop() {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	s.stopped = true
	close(s.done)
	s.mu.Unlock()
	s.wg.Wait()
	s.mu.Lock()
	s.heap, s.free, s.due = nil, nil, nil
	s.mu.Unlock()
}

// inFlight reports the delayed datagrams not yet delivered (or dropped).
func (s *scheduler) inFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.heap) + s.busy
}

func (a *delayed) before(b *delayed) bool {
	return a.at < b.at || (a.at == b.at && a.seq < b.seq)
}

// heapPush and heapPop keep s.heap a binary min-heap; hand-written because
// container/heap boxes every element in an interface (an allocation).
func (s *scheduler) heapPush(d delayed) {
	s.heap = append(s.heap, d)
	h := s.heap
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !h[i].before(&h[p]) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
}

func (s *scheduler) heapPop() delayed {
	h := s.heap
	top := h[0]
	last := len(h) - 1
	h[0] = h[last]
	h[last] = delayed{}
	h = h[:last]
	i := 0
	for {
		l := 2*i + 1
		if l >= len(h) {
			break
		}
		c := l
		if r := l + 1; r < len(h) && h[r].before(&h[l]) {
			c = r
		}
		if !h[c].before(&h[i]) {
			break
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
	s.heap = h
	return top
}
