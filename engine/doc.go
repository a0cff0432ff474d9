// Package engine is the Warp Mesh node: it owns membership (discovery,
// heartbeats, failure detection), fan-out, deduplication and the
// invalidation API that applications and presets publish through.
//
// A Node moves invalidations along a fixed path: Publish copies a key into
// an MPSC record ring; one sender loop drains everything ready, packs full
// frames (codec) and writes every (frame × destination) pair with batched
// syscalls (sockopt). On receive, a reader loop fills preallocated batches
// that a worker parses, deduplicates, applies to handlers and relays.
//
// The engine reaches the network only through the Transport interface, and
// it never allocates per invalidation in steady state on either path.
package engine
