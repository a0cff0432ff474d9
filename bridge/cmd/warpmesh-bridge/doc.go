// Command warpmesh-bridge joins its Warp Mesh mesh to other meshes through
// NATS (see package bridge): it is a member of its mesh that forwards the
// mesh's invalidations to NATS and publishes the other meshes' into it.
//
//	warpmesh-bridge --cluster eu --peers 10.0.0.1:7946 --nats-url nats://nats:4222 --http :8081
//	warpmesh-bridge demo    # three meshes on loopback joined by an embedded nats-server
//
// Every flag can also be set by a WARPMESH_* environment variable
// (--nats-url by WARPMESH_NATS_URL); a flag on the command line wins.
// --http serves /healthz, /readyz (200 while connected to NATS), /stats
// and /metrics (Prometheus: the node's warpmesh_* metrics and the bridge's
// warpmesh_bridge_*). Exit status 2 is a usage error, 1 any other failure.
package main
