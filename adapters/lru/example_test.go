package lruadapter_test

import (
	"fmt"
	"io"
	"log/slog"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	lruadapter "github.com/warpmesh/warpmesh/adapters/lru"
	"github.com/warpmesh/warpmesh/engine"
	"github.com/warpmesh/warpmesh/presets"
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
	// Two instances of a service, each with the LRU cache it already had,
	// attached in namespace "profiles".
	a := node()
	defer a.Close()
	b := node(a.Addr().String())
	defer b.Close()
	// Attach flushes the cache when its node becomes ready (what it held
	// before may be stale): attach and fill once the nodes are ready.
	until(func() bool {
		return a.Ready() && b.Ready() && a.Stats().MembersAlive == 1 && b.Stats().MembersAlive == 1
	})

	mine, _ := lru.New[string, string](1000)
	theirs, _ := lru.New[string, string](1000)
	mine.Add("ann", "profile v1")
	attA, err := lruadapter.Attach(a, theirs, presets.WithNamespace("profiles"))
	if err != nil {
		panic(err)
	}
	defer attA.Close()
	attB, err := lruadapter.Attach(b, mine, presets.WithNamespace("profiles"))
	if err != nil {
		panic(err)
	}
	defer attB.Close()

	// Instance a updates ann's profile, caches it, and tells the mesh.
	theirs.Add("ann", "profile v2")
	if err := attA.Invalidate("ann"); err != nil {
		panic(err)
	}
	until(func() bool { return !mine.Contains("ann") })
	fmt.Println("b still holds v1:", mine.Contains("ann"))
	// Output: b still holds v1: false
}
