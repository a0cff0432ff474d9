package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/warpmesh/warpmesh/bridge"
	"github.com/warpmesh/warpmesh/engine"
	"github.com/warpmesh/warpmesh/presets"
)

// runDemo shows three meshes on loopback, joined only by an embedded
// nats-server on 127.0.0.1: a delete in one mesh's cache empties the
// entry in the others; a nats-server restart makes the far side flush and
// the link recover. Meshes use distinct cluster names and ports, so on
// loopback they hear each other only through NATS.
func runDemo(ctx context.Context, out io.Writer) error {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ns, err := startDemoNATS(-1)
	if err != nil {
		return err
	}
	port := ns.Addr().(*net.TCPAddr).Port
	defer func() { ns.Shutdown() }()
	fmt.Fprintf(out, "nats-server on 127.0.0.1:%d\n", port)

	type mesh struct {
		name  string
		cache *presets.Cache[string]
		b     *bridge.Bridge
	}
	member := func(cluster, seed string) engine.Options {
		o := engine.Options{Port: engine.AnyPort, BindAddr: "127.0.0.1", UnicastOnly: true,
			Heartbeat: 100 * time.Millisecond, Cluster: cluster, Logger: quiet}
		if seed != "" {
			o.Peers = []string{seed}
		}
		return o
	}
	var meshes []*mesh
	defer func() {
		for _, m := range meshes {
			m.b.Close()
			m.cache.Close()
		}
	}()
	for _, name := range []string{"east", "west", "south"} {
		c, err := presets.NewMeshEventual[string](member(name, ""))
		if err != nil {
			return err
		}
		b, err := bridge.New(bridge.Options{Mesh: member(name, c.Node().Addr().String()),
			NATSURL: fmt.Sprintf("nats://127.0.0.1:%d", port), KeepAlive: 100 * time.Millisecond, Logger: quiet})
		if err != nil {
			c.Close()
			return err
		}
		meshes = append(meshes, &mesh{name, c, b})
		fmt.Fprintf(out, "mesh %-5s: cache node %s, bridge %016x at %s\n", name, c.Node().Addr(), b.Node().ID(), b.Node().Addr())
	}
	wait := func(what string, cond func() bool) error {
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				return fmt.Errorf("demo: timed out waiting for %s", what)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Millisecond):
			}
		}
		return nil
	}
	linked := func() bool {
		for _, m := range meshes {
			if s := m.b.Stats(); !s.Leader || s.Meshes != len(meshes)-1 || m.cache.Stats().Flushes == 0 {
				return false
			}
		}
		return true
	}
	if err := wait("the bridges to link the meshes", linked); err != nil {
		return err
	}
	fmt.Fprintln(out, "linked: each bridge imports for its mesh and hears the other two")

	load := func(context.Context) (string, error) { return "Ada", nil }
	for _, m := range meshes[1:] {
		if _, err := m.cache.GetOrLoad(ctx, "user:42", load); err != nil {
			return err
		}
	}
	t0 := time.Now()
	if err := meshes[0].cache.Delete("user:42"); err != nil {
		return err
	}
	gone := func() bool {
		for _, m := range meshes[1:] {
			if _, ok := m.cache.Get("user:42"); ok {
				return false
			}
		}
		return true
	}
	if err := wait("user:42 to leave west and south", gone); err != nil {
		return err
	}
	fmt.Fprintf(out, "east deleted user:42: gone from west and south after %v\n", time.Since(t0).Round(10*time.Microsecond))

	const n = 100_000
	t0 = time.Now()
	for i := range n {
		if err := meshes[0].cache.Node().Invalidate(fmt.Sprintf("k:%d", i)); err != nil {
			return err
		}
	}
	if err := wait("100k invalidations in west and south", func() bool {
		return meshes[1].b.Stats().Imported >= n && meshes[2].b.Stats().Imported >= n
	}); err != nil {
		return err
	}
	s := meshes[0].b.Stats()
	fmt.Fprintf(out, "%d invalidations east → west and south in %v (%.0f per NATS message)\n",
		n, time.Since(t0).Round(time.Millisecond), float64(s.Exported)/float64(max(s.ExportBatches, 1)))

	if _, err := meshes[1].cache.GetOrLoad(ctx, "user:7", load); err != nil {
		return err
	}
	before := meshes[1].cache.Stats().Flushes
	ns.Shutdown()
	fmt.Fprintln(out, "nats-server stopped")
	if err := wait("west to flush", func() bool { return meshes[1].cache.Stats().Flushes > before }); err != nil {
		return err
	}
	_, held := meshes[1].cache.Get("user:7")
	fmt.Fprintf(out, "west flushed its cache (user:7 cached: %v): it cannot know what it misses\n", held)
	if ns, err = startDemoNATS(port); err != nil {
		return err
	}
	if err := wait("the bridges to reconnect", func() bool {
		for _, m := range meshes {
			if !m.b.Connected() {
				return false
			}
		}
		return true
	}); err != nil {
		return err
	}
	fmt.Fprintln(out, "nats-server restarted; bridges reconnected (and flushed once more)")
	for _, m := range meshes {
		s := m.b.Stats()
		fmt.Fprintf(out, "bridge %-5s: exported %d, imported %d, flushes %d, dropped %d\n",
			m.name, s.Exported, s.Imported, s.Flushed(), s.Dropped())
	}
	return nil
}

func startDemoNATS(port int) (*server.Server, error) {
	var last error
	for range 50 { // a restart may race the old listener's close
		ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, NoLog: true, NoSigs: true})
		if err != nil {
			return nil, err
		}
		go ns.Start()
		if ns.ReadyForConnections(2 * time.Second) {
			return ns, nil
		}
		ns.Shutdown()
		last = fmt.Errorf("nats-server on port %d did not start", port)
		time.Sleep(20 * time.Millisecond)
	}
	return nil, last
}
