// Package deploy checks the deployment examples under deploy/: the
// Kubernetes manifests are parsed and their fields that matter asserted
// (ports, probes, publishNotReadyAddresses, WARPMESH_* names against the
// CLI's flags), and the Docker Compose and Swarm examples run for real on
// the FROM-scratch image built from the tree: replicas find each other
// through Docker's embedded DNS (the service name under Compose,
// tasks.<service> under a one-node swarm) and by multicast on a bridge
// network, survive a stopped and restarted replica, and follow scaling up
// and down.
//
// It owns only what it creates: an image tagged warpmesh-test:<pid>,
// Compose projects and a stack named wmt<pid>…, a swarm it initialised
// itself on 127.0.0.1 (it never joins or leaves a swarm it did not make).
// Containers get 127.0.0.1 as their upstream DNS, so nothing is forwarded
// to a real DNS server. Without Docker the container tests skip, saying
// so; WARPMESH_DEPLOY_LONG=1 runs longer variants.
package deploy
