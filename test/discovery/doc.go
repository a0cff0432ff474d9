// Package discovery tests how nodes find each other where services really
// run: "pods" are Linux network namespaces on a bridge (in a namespace of
// its own), their only configuration one DNS name answered by a DNS server
// the test runs on 127.0.0.53 (internal/testdns), or an IPv6 multicast
// group. Nodes run in this process: each is created on a thread switched
// into its pod's namespace, so its sockets live there, while DNS lookups
// run on ordinary threads and reach the test's server.
//
// It owns only namespaces named "wmd<pid>-…" and never touches the root
// namespace's links, routes or firewall. It needs root and the ip command;
// otherwise every test skips, saying so. WARPMESH_DISCOVERY_LONG=1 runs
// longer variants (more pods).
package discovery
