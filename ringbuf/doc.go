// Package ringbuf hands values and byte records from one stage of the data
// path to the next through bounded, preallocated, lock-free rings: SPSC (one
// producer, one consumer), MPSC (many producers, one consumer) and Records
// (many producers writing variable-length byte records into one []byte).
//
// It owns the ring memory and the waiting protocol (spin briefly, then park on
// a channel only when the other side is parked). It never allocates on the hot
// path, never touches a socket, and never interprets the bytes it carries.
package ringbuf
