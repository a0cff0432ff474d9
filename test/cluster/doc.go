// Package cluster holds the multi-host fault tests: real hosts made of
// Linux network namespaces joined by veth pairs to a bridge in a namespace
// of its own, running node processes under loss, partitions, crashes,
// restarts and pauses, with a checker that compares what publishers sent
// against what every node applied or was told it missed (Gap events).
// It owns only namespaces, links and nftables tables it created (names
// prefixed "wmc<pid>-"); it must never touch the root namespace's links,
// routes or firewall, and it needs root (otherwise every test skips).
package cluster
