// Package cachesim compares presets.Cache with the Go caches services
// already run (otter, theine, ristretto, golang-lru): a hit-ratio
// simulation over deterministic traces (trace.go, sim.go, cmd/hitratio)
// and side-by-side Get and Set benchmarks (bench_test.go).
//
// It is a module of its own so that the competitors never become
// dependencies of github.com/warpmesh/warpmesh. Nothing here sends a
// packet beyond 127.0.0.1: the presets cache runs on a node with no peers.
package cachesim
