package sockopt

import (
	"fmt"
	"math"
)

// checkFraction validates a SetRandomDrop argument.
func checkFraction(fraction float64) error {
	if math.IsNaN(fraction) || fraction < 0 || fraction > 1 {
		return fmt.Errorf("%w: fraction: %v not in [0, 1]", ErrConfig, fraction)
	}
	return nil
}
