package metrics_test

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/warpmesh/warpmesh/engine"
	"github.com/warpmesh/warpmesh/metrics"
)

// Register a node's metrics with a service's own registry; serve it with
// promhttp.HandlerFor(reg, promhttp.HandlerOpts{}) as usual.
func ExampleNew() {
	node, err := engine.New(engine.Options{
		Port:        17946, // a loopback-only example node
		BindAddr:    "127.0.0.1",
		UnicastOnly: true,
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer node.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.New(node, prometheus.Labels{"mesh": "sessions"}))

	if err := node.Invalidate("user:42"); err != nil {
		fmt.Println(err)
		return
	}
	families, err := reg.Gather()
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, f := range families {
		if f.GetName() == "warpmesh_published_total" {
			m := f.GetMetric()[0]
			fmt.Println(f.GetName(), m.GetLabel()[0].GetName(), m.GetLabel()[0].GetValue(), m.GetCounter().GetValue())
		}
	}
	// Output:
	// warpmesh_published_total mesh sessions 1
}
