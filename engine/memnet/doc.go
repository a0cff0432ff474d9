// Package memnet is an in-memory datagram network for protocol tests and
// mesh simulations: endpoints implement engine.Transport, and the network
// injects faults between them (loss, fixed and jittered delay that
// reorders, duplication, partitions, paused endpoints) from a seeded PRNG.
//
// memnet owns its endpoints' receive queues and the scheduler that holds
// delayed datagrams. It never touches a socket, never starts a goroutine or
// timer per datagram, and allocates nothing per datagram in steady state.
package memnet
