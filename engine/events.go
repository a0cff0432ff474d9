package engine

import (
	"sync"
)

// EventType says what happened to a member (or to the stream of
// invalidations, for EventGap).
type EventType uint8

// Event types.
const (
	EventJoin    EventType = iota + 1 // a member appeared, or came back after dead/left/restart
	EventSuspect                      // a member went silent for SuspectAfter
	EventAlive                        // a suspect member was heard from again
	EventDead                         // a member went silent for DeadAfter
	EventLeave                        // a member left gracefully (or was replaced)
	EventGap                          // invalidations from an origin may have been missed
	EventReady                        // the node became coherent with the mesh (see Node.Ready)
)

var eventNames = [...]string{"", "join", "suspect", "alive", "dead", "leave", "gap", "ready"}

// String names the event type.
func (t EventType) String() string {
	if int(t) < len(eventNames) && t != 0 {
		return eventNames[t]
	}
	return "unknown"
}

// GapReason says why a gap could not be repaired.
type GapReason uint8

// Gap reasons.
const (
	GapEvicted     GapReason = iota + 1 // the origin no longer holds the frames
	GapUnreachable                      // repair did not succeed before its deadline
	GapOriginDead                       // the origin died with gaps open
	GapNewEpoch                         // the origin restarted with gaps open
	GapTooOld                           // the gap fell out of the receive window
	numGapReasons
)

var gapNames = [...]string{"", "evicted", "unreachable", "origin_dead", "new_epoch", "too_old"}

// String names the reason.
func (r GapReason) String() string {
	if int(r) < len(gapNames) && r != 0 {
		return gapNames[r]
	}
	return "unknown"
}

// Gap describes invalidations that may have been missed.
type Gap struct {
	Origin  uint64
	Epoch   uint64
	Missing uint64 // number of frames (sequences) not received
	First   uint64 // lowest missing sequence
	Last    uint64 // highest missing sequence
	Reason  GapReason
}

// Event is a membership change, a Gap, or the node becoming ready. Member
// is set for membership events; Gap for EventGap; neither for EventReady.
type Event struct {
	Type   EventType
	Member Member
	Gap    Gap
}

// eventQueue delivers events to handlers in order on its own goroutine, so
// a slow handler never stalls the I/O loops. Events are rare; the queue is
// unbounded.
type eventQueue struct {
	mu       sync.Mutex
	pending  []Event
	handlers []*func(Event)
	wake     chan struct{}
}

func newEventQueue() *eventQueue {
	return &eventQueue{wake: make(chan struct{}, 1)}
}

func (q *eventQueue) subscribe(fn func(Event)) (unsubscribe func()) {
	slot := &fn
	q.mu.Lock()
	q.handlers = append(q.handlers, slot)
	q.mu.Unlock()
	return func() {
		q.mu.Lock()
		hs := make([]*func(Event), 0, len(q.handlers))
		for _, h := range q.handlers {
			if h != slot {
				hs = append(hs, h)
			}
		}
		q.handlers = hs
		q.mu.Unlock()
	}
}

func (q *eventQueue) push(e Event) {
	q.mu.Lock()
	q.pending = append(q.pending, e)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// run delivers until stop is closed, then delivers what is left.
func (q *eventQueue) run(stop <-chan struct{}) {
	var batch []Event
	for {
		q.mu.Lock()
		batch, q.pending = q.pending, batch[:0]
		hs := q.handlers
		q.mu.Unlock()
		for _, e := range batch {
			for _, h := range hs {
				(*h)(e)
			}
		}
		if len(batch) > 0 {
			continue
		}
		select {
		case <-q.wake:
		case <-stop:
			q.mu.Lock()
			rest := q.pending
			q.pending = nil
			hs := q.handlers
			q.mu.Unlock()
			for _, e := range rest {
				for _, h := range hs {
					(*h)(e)
				}
			}
			return
		}
	}
}
