// Package metrics adapts a Warp Mesh node to Prometheus: a
// prometheus.Collector that reads engine.Node.Stats and Members at scrape
// time, so a service that already exposes Prometheus metrics gets the same
// warpmesh_* series as the warpmesh CLI's /metrics endpoint.
//
// It owns nothing but metric descriptors and a few event counters; it never
// touches the node's data path (a scrape takes one Stats snapshot) and it is
// the only package besides cmd/ that imports client_golang: the library
// packages keep their three dependencies.
package metrics
