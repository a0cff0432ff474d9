// Package engine is the Warp Mesh node: it owns membership (discovery,
// heartbeats, failure detection), fan-out, deduplication, loss repair,
// flow control, authentication and the invalidation API that applications
// and presets publish through.
//
// A Node moves invalidations along a fixed path: Publish copies a key into
// an MPSC record ring; one sender loop drains everything ready, packs full
// frames (codec), seals them, and writes every (frame × destination) pair
// with batched syscalls and UDP GSO (sockopt), never more than a window
// ahead of its slowest receiver. On receive, a reader loop fills
// preallocated batches; small batches are handled by the reader itself
// (latency), large ones are handed whole to a worker through a ring
// (throughput). Handling means: parse, authenticate, deduplicate, track
// per-origin sequences (NACK gaps, raise Gap events), apply to handlers,
// relay in large meshes, acknowledge progress.
//
// Discovery is by multicast (an IPv4 or IPv6 group) or from seeds; a seed
// that is a DNS name (A/AAAA or SRV) is resolved by a goroutine of its own,
// never on the failure-detection loop (resolve.go).
//
// The engine reaches the network only through the Transport interface, and
// it never allocates per invalidation in steady state on either path.
//
// On a hostile network (SECURITY.md has the threat model): an address
// learned from a digest or an unauthenticated packet is sent nothing but a
// CHALLENGE until it echoes the cookie (validate.go); heartbeats, data and
// repairs go to validated members only; the member table, the challenge
// table and the derived-key cache have documented caps whose eviction
// spares validated, recently heard members; control frames are screened
// before the replay window so that forged ones change nothing.
package engine
