package otteradapter_test

import (
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/maypok86/otter/v2"

	otteradapter "github.com/warpmesh/warpmesh/adapters/otter"
	"github.com/warpmesh/warpmesh/engine"
)

func node(peers ...string) *engine.Node {
	n, err := engine.New(engine.Options{
		Port:        engine.AnyPort,
		BindAddr:    "127.0.0.1",
		UnicastOnly: true,
		Peers:       peers,
		Heartbeat:   50 * time.Millisecond,
		Cluster:     "example",
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		panic(err)
	}
	return n
}

func until(cond func() bool) {
	for deadline := time.Now().Add(5 * time.Second); !cond() && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
}

func ExampleAttach() {
	// Two instances of a service, each with the otter cache it already had.
	a, b := node(), (*engine.Node)(nil)
	defer a.Close()
	b = node(a.Addr().String())
	defer b.Close()
	// Attach flushes the cache when its node becomes ready (what it held
	// before may be stale): attach and fill once the nodes are ready.
	until(func() bool {
		return a.Ready() && b.Ready() && a.Stats().MembersAlive == 1 && b.Stats().MembersAlive == 1
	})

	prices := otter.Must(&otter.Options[string, int]{MaximumSize: 10_000})
	prices.Set("sku:42", 1999)
	att, err := otteradapter.Attach(b, prices)
	if err != nil {
		panic(err)
	}
	defer att.Close()

	// Instance a changes the price in the database, then tells the mesh.
	if err := a.Invalidate("sku:42"); err != nil {
		panic(err)
	}
	until(func() bool { _, ok := prices.GetIfPresent("sku:42"); return !ok })
	_, ok := prices.GetIfPresent("sku:42")
	fmt.Println("stale price still cached:", ok)
	// Output: stale price still cached: false
}
