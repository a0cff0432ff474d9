// Package bench holds Warp Mesh's end-to-end benchmarks: nodes publishing
// to one or three receiver nodes over loopback UDP in one process, and the
// raw loopback datagram ceiling (plain writes, batched sendmmsg, GSO) they
// run against. It is tests only, reports invalidations/s and packets/s with
// b.ReportMetric so benchstat compares runs, and never sends off 127.0.0.1.
// The multi-process harness is bench/cmd/meshbench; the broker comparison is
// the nested module bench/compare.
package bench
