//go:build !race

package sockopt

// raceEnabled is true when the race detector, which allocates on its own,
// is compiled in.
const raceEnabled = false
