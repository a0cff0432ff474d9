// Package coherence is the stale-read oracle: it proves, or disproves,
// that caches built on Warp Mesh never serve a value older than a
// documented bound, while instances restart, crash, lose datagrams and get
// partitioned. It uses only the public API (engine.Options, engine.Node,
// presets.Cache), like an application would.
//
// # The oracle
//
// A versioned in-memory database holds a version per key and the history
// of every committed version with its commit time (monotonic clock). N
// service instances each run a presets.Cache on its own engine.Node on
// 127.0.0.1. Writers update the database, then Set (or Delete) the key
// through their instance's cache; each key has one writer, so the
// application itself never races. Readers GetOrLoad random keys from the
// database through their cache and record (key, version read, start, end).
//
// After a run every read is checked against the history: a read of key k
// that returned version v is stale when version v+1 was committed more
// than Bound before the read started. Bound is two heartbeats (a lost
// invalidation is noticed from the next frame, HWM announcement or
// heartbeat; two cover one lost announcement) plus the repair timeout
// (after which a gap is given up with a Gap event that flushes the cache)
// plus scheduling slack for a loaded two-core machine (250 ms; 500 ms
// under the race detector): 850 ms (1.1 s under -race) with the timeouts
// used here (heartbeat 50 ms, suspect 250 ms, dead 500 ms, repair
// 500 ms). A read that returned a version never committed, or committed
// after the read ended, is invalid. Both must be zero.
//
// While a network cut separates two instances no invalidation can cross
// it; for a reader on the far side a newer version written on the near
// side (or within Bound before the cut) counts as committed at the heal,
// so reads are held to the bound from the heal on. Likewise a probe
// goroutine records when the test process had no core (it overslept by
// more than 25 ms); a read past the bound by no more than the stall time
// since the newer commit is the machine's delay, not the engine's. Both
// kinds are counted ("excused: cut", "excused: stall"), never hidden.
//
// # Scenarios
//
// TestCoherence runs, each on a fresh cluster of five instances: steady
// state; 5 % random loss; a rolling restart of every instance (Close, then
// a new node with a new id on a new port, as a new pod); kill -9 and
// restart (Node.Abort after the instance's last acknowledged write has
// left its socket), also with every node keyed (a Keyring: members are
// then vouched for by gossip instead of challenged); a two-way partition of 2 | 3 instances for longer
// than DeadAfter, then heal; an inbound-only partition (one instance hears
// no one, everyone hears it); a mass restart (all instances at once); and
// the join scenario: a publisher writing continuously while new instances
// start and warm their caches from the database the moment New returns.
// Faults are injected by a Transport wrapper around real sockets (the
// engine's Transport seam) that drops datagrams on the way out.
//
// TestJoinSilentMisses and TestRestartSameAddressSilentMisses are the
// faster engine-level join checkers: a publisher at 250k keys/s, a
// subscriber started mid-stream (or restarted at the same address with a
// new id), 10 times each, counting keys published after New returned that
// never reached it and were not covered by a Gap event. Keys published
// before the subscriber reported ready (Node.WaitReady) are counted apart:
// presets stores nothing until then, so missing them leaves nothing stale.
// Every key published after ready must arrive or be flagged.
//
// TestDeafOriginBound is the engine-level form of the inbound-only
// partition: an origin that hears none of its receivers (they hear it and
// each other) keeps publishing; each key must reach every receiver, or be
// covered by a Gap event, within Bound. Its past_forget case makes the cut
// outlast the 10 × DeadAfter after which the origin forgets the receivers
// (with shorter timeouts, to fit CI).
//
// The default run is the CI variant: go test -count=1 ./test/coherence/
// takes about 40 s and checks about 20 million reads; under -race it takes
// about a minute on two loaded cores and checks over a million.
// WARPMESH_COHERENCE_LONG=1 multiplies every phase and repetition by
// WARPMESH_COHERENCE_FACTOR (default 10); RESULTS.md has its figures. The
// package sends traffic only to 127.0.0.1.
package coherence
