// Package sockopt opens the UDP sockets Warp Mesh talks through and moves
// datagrams across them in batches: recvmmsg/sendmmsg on Linux, UDP GSO on
// send and UDP GRO on receive where the kernel offers them, socket options
// (buffer sizes, SO_REUSEPORT, SO_BINDTODEVICE, multicast) and a kernel
// random-drop filter for loss tests.
//
// It owns the socket and its per-socket scratch (message headers, iovecs,
// addresses, control buffers), allocated once at Listen. It never allocates
// on the read or write path, never copies or retains caller buffers beyond a
// call, and never parses what it carries.
package sockopt
