package engine_test

import (
	"log"
	"os"

	"github.com/warpmesh/warpmesh/engine"
)

// A node in a Kubernetes pod: its only discovery setting is the headless
// Service's name, which stands for every pod's address (A or AAAA
// records), re-resolved every heartbeat.
func ExampleOptions_dnsSeeds() {
	node, err := engine.New(engine.Options{
		Port:          7946,
		Peers:         []string{"warpmesh.default.svc.cluster.local:7946"},
		AdvertiseAddr: os.Getenv("POD_IP"), // IPv4 or IPv6: the node binds :: for IPv6
	})
	if err != nil {
		log.Fatal(err)
	}
	defer node.Close()
}

// Seeds from SRV records, for ports that vary by pod or task: every
// target of the records, with its port.
func ExampleOptions_srvSeeds() {
	node, err := engine.New(engine.Options{
		Port:  engine.AnyPort,
		Peers: []string{"dnssrv+_warpmesh._udp.warpmesh.default.svc.cluster.local"},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer node.Close()
}

// Discovery by IPv6 multicast on a LAN: a site-local group joined on eth0,
// on a dual-stack socket.
func ExampleOptions_ipv6Multicast() {
	node, err := engine.New(engine.Options{
		BindAddr:  "::",
		Group:     "ff15::7946",
		Interface: "eth0",
	})
	if err != nil {
		log.Fatal(err)
	}
	defer node.Close()
}
