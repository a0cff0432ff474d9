package bridge_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/warpmesh/warpmesh/bridge"
	"github.com/warpmesh/warpmesh/engine"
	"github.com/warpmesh/warpmesh/presets"
)

// Two meshes, "east" and "west", that share no network path but a NATS
// server: a bridge in each joins them, and a delete in east's cache
// reaches west's. (On real hosts each mesh has its own network and
// seeds; here they share loopback with distinct cluster names and ports.)
func ExampleNew() {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		log.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(5 * time.Second) {
		log.Fatal("nats-server not ready")
	}
	defer ns.Shutdown()

	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	member := func(cluster, seed string) engine.Options {
		o := engine.Options{Port: engine.AnyPort, BindAddr: "127.0.0.1", UnicastOnly: true,
			Heartbeat: 100 * time.Millisecond, Cluster: cluster, Logger: quiet}
		if seed != "" {
			o.Peers = []string{seed}
		}
		return o
	}
	mesh := func(name string) (*presets.Cache[string], *bridge.Bridge) {
		cache, err := presets.NewMeshEventual[string](member(name, ""))
		if err != nil {
			log.Fatal(err)
		}
		b, err := bridge.New(bridge.Options{
			Mesh:      member(name, cache.Node().Addr().String()), // the bridge joins its mesh like any member
			NATSURL:   ns.ClientURL(),
			KeepAlive: 100 * time.Millisecond, StreamTimeout: time.Second, Logger: quiet,
		})
		if err != nil {
			log.Fatal(err)
		}
		return cache, b
	}
	east, eb := mesh("east")
	defer east.Close()
	defer eb.Close()
	west, wb := mesh("west")
	defer west.Close()
	defer wb.Close()
	for !eb.Leader() || !wb.Leader() || eb.Stats().Meshes == 0 || wb.Stats().Meshes == 0 {
		time.Sleep(10 * time.Millisecond) // until both bridges import and hear each other
	}
	for west.Stats().Flushes == 0 {
		time.Sleep(10 * time.Millisecond) // the new bridge's one flush has reached west's cache
	}

	load := func(context.Context) (string, error) { return "Ada", nil }
	west.GetOrLoad(context.Background(), "user:42", load)
	east.Delete("user:42") // east's write: every mesh drops its copy
	for {
		if _, ok := west.Get("user:42"); !ok {
			break
		}
		time.Sleep(time.Millisecond)
	}
	fmt.Println("west dropped user:42; west imported", wb.Stats().Imported, "invalidation")
	// Output: west dropped user:42; west imported 1 invalidation
}
