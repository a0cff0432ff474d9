// Package swim is the membership state machine of meshes above the direct
// limit: SWIM failure detection with Lifeguard's refinements. It owns the
// probe schedule (one member per protocol period, in a shuffled
// round-robin; a direct probe, then indirect probes through others), the
// suspicion of members that fail a probe (refuted by incarnation, dead
// after a timeout that shrinks with independent confirmations), the local
// health multiplier that slows a node down when it is itself the problem,
// the queue of membership updates piggybacked on probes (each sent about
// RetransmitMult·log10 N times, least-sent first) and the push-pull
// schedule.
//
// It owns no goroutine, clock, socket or lock: callers pass the time and
// plain values in, act on the Actions it appends, and call Tick again by
// Next. It never allocates in steady state (a fixed member set); adding a
// member may grow its tables. It never decides who is a member: the
// engine adds members it has validated and asks it to judge updates about
// them.
package swim
