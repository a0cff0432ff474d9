// Command meshbench runs Warp Mesh's multi-process benchmark: a publisher
// and each receiver in separate OS processes on loopback, in throughput
// mode (as fast as possible for a duration) and latency mode (fixed rate,
// publish-to-apply percentiles), with the CPU each process and the rest of
// the machine used. It re-executes itself for each role. The brokers it is
// compared with live in the nested module bench/compare.
//
//	go run ./bench/cmd/meshbench -duration 3s
//	go run ./bench/cmd/meshbench -modes latency -rates 50000 -systems warpmesh
package main

import (
	"os"

	"github.com/warpmesh/warpmesh/bench/harness"
)

func main() {
	os.Exit(harness.Main(harness.WarpMeshSystems(), os.Args[1:], os.Stdout))
}
