// Package harness runs Warp Mesh and the brokers it is compared with in the
// same multi-process layout: a publisher and each receiver in their own OS
// process, re-executed from one binary with a role flag, reporting to the
// parent by JSON lines on stdout. It owns the workloads (throughput and
// fixed-rate latency), CPU accounting (per process and for the rest of the
// machine, with reruns of disturbed runs) and the markdown tables.
// It never sends anything off 127.0.0.0/8 and never touches engine internals.
package harness
