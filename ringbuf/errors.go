package ringbuf

import (
	"errors"
	"net"
)

// closedError is the type of ErrClosed. It reports itself as net.ErrClosed to
// errors.Is, so callers that already handle a closed connection handle a
// closed ring the same way.
type closedError struct{}

func (closedError) Error() string { return "ringbuf: closed" }

// Is reports whether target is net.ErrClosed.
func (closedError) Is(target error) bool { return target == net.ErrClosed }

var (
	// ErrClosed is returned by Push, Write and Wait once the ring is closed
	// (Wait only after the ring is also drained). errors.Is(ErrClosed,
	// net.ErrClosed) is true.
	ErrClosed error = closedError{}

	// ErrFull is returned by Records.TryWrite when the record does not fit in
	// the free space right now.
	ErrFull = errors.New("ringbuf: full")

	// ErrTooLarge is returned by Records.TryWrite and Records.Write when the
	// record is larger than Records.MaxPayload and could never fit.
	ErrTooLarge = errors.New("ringbuf: record too large")

	// ErrCapacity is wrapped by the constructors when the capacity or size
	// they are given is not an acceptable power of two; the message names
	// the parameter and its value.
	ErrCapacity = errors.New("ringbuf: invalid capacity")
)
