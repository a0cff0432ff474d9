// Command compare runs the same multi-process workloads as meshbench
// (bench/harness) against NATS core, Redis pub/sub and hashicorp/memberlist
// side by side with Warp Mesh, on loopback only, and prints one markdown
// table per workload with Warp Mesh's ratio to each system. It is a nested
// module so the brokers' dependencies never reach the library's go.mod.
// Run it through run.sh, which starts redis-server and bounds the time.
package main
