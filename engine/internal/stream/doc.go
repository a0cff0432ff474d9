// Package stream is the receiver's state machine for one origin's DATA
// stream: which sequences of the origin's epoch arrived (an exact window),
// which are missing and since when, when to ask for them again (NACK
// schedule with a reordering grace and backoff), and what must be given
// up (expired, evicted by the origin, out of the window, origin gone) —
// collected as one Loss per batch so that the engine raises one Gap event.
//
// It owns no goroutine, clock, socket or lock: callers pass the time in
// and act on what the methods return (a verdict, a Tally of counter
// changes, sequences to NACK). It never allocates after a stream's first
// DATA frame and first loss. The engine's receive worker drives it.
package stream
