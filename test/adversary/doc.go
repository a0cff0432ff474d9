// Package adversary is the hostile-network suite of issue 13: it attacks a
// real node (engine.New on real UDP sockets, bound to 127.0.0.1) from raw
// UDP sockets that craft frames with codec, and measures what the node does
// with them: bytes it aims at a victim address (a UDP socket on 127.0.0.2
// that only counts), its member table (Node.Stats), its heap, and whether a
// legitimate newcomer still joins and legitimate invalidations keep their
// latency during the flood.
//
// It sends only to 127.0.0.0/8. `go test ./test/adversary` runs the short
// variant (well under a minute); WARPMESH_ADVERSARY_LONG=1 runs the long one
// (the sizes: 100k identities, longer windows). Every test logs a
// "figure:" line; SECURITY.md records them.
package adversary
