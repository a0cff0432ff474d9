//go:build race

package coherence

import "time"

// raceSlack is the scheduling slack of Bound under the race detector,
// which slows every goroutine several times over.
const raceSlack = 500 * time.Millisecond
