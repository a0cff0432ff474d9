//go:build !race

package adversary

// raceEnabled reports whether the race detector is on.
const raceEnabled = false
