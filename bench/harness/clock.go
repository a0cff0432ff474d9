package harness

import (
	"time"

	"golang.org/x/sys/unix"
)

// Clock converts Go's monotonic readings into CLOCK_MONOTONIC nanoseconds,
// which every process on the machine shares, so a send time written into a
// key by one process can be subtracted from an arrival time in another.
// Go's monotonic clock is CLOCK_MONOTONIC on Linux; only its origin is
// hidden, and NewClock measures it once.
type Clock struct {
	base  int64
	start time.Time
}

// NewClock reads CLOCK_MONOTONIC once and pairs it with time.Now.
func NewClock() (*Clock, error) {
	var ts unix.Timespec
	start := time.Now()
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return nil, err
	}
	return &Clock{base: ts.Nano(), start: start}, nil
}

// Now returns CLOCK_MONOTONIC in nanoseconds. It costs a vDSO time.Now and
// does not allocate.
func (c *Clock) Now() int64 { return c.base + int64(time.Since(c.start)) }
