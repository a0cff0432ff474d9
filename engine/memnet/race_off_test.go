//go:build !race

package memnet_test

// raceEnabled reports whether the race detector is on: allocation gates
// are skipped and simulated meshes shrink.
const raceEnabled = false
