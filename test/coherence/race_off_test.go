//go:build !race

package coherence

import "time"

// raceSlack is the scheduling slack of Bound without the race detector.
const raceSlack = 250 * time.Millisecond
