package presets_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/warpmesh/warpmesh/engine"
	"github.com/warpmesh/warpmesh/presets"
)

type User struct {
	Name string
}

// The examples run a real node on 127.0.0.1 with a port the OS picks; a
// service would use engine.Options{Port: 7946, Peers: ...} instead.
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func localNode(port int, peers ...string) engine.Options {
	return engine.Options{
		Port:        port,
		BindAddr:    "127.0.0.1",
		UnicastOnly: true,
		Peers:       peers,
		Heartbeat:   50 * time.Millisecond,
		Cluster:     "example",
		Logger:      quiet,
	}
}

// freePort asks the OS for a free UDP port on 127.0.0.1.
func freePort() int {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// waitUntil polls cond until it holds or a deadline passes.
func waitUntil(cond func() bool) bool {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return false
}

func ExampleNewMeshEventual() {
	cache, err := presets.NewMeshEventual[User](localNode(freePort()),
		presets.WithTTL(10*time.Minute),
		presets.WithMaxEntries(100_000),
	)
	if err != nil {
		fmt.Println("start cache:", err)
		return
	}
	defer cache.Close()
	// Until the node is coherent with the mesh the cache stores nothing
	// (loads pass through); a service usually just starts serving.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := cache.WaitReady(ctx); err != nil {
		fmt.Println("ready:", err)
		return
	}

	// Set stores locally and invalidates user:42 on every other instance.
	if err := cache.Set("user:42", User{Name: "Ada"}); err != nil {
		fmt.Println("set:", err)
	}
	u, ok := cache.Get("user:42")
	fmt.Println(u.Name, ok)

	cache.Delete("user:42")
	_, ok = cache.Get("user:42")
	fmt.Println(ok)
	// Output:
	// Ada true
	// false
}

func ExampleCache_GetOrLoad() {
	cache, err := presets.NewMeshEventual[User](localNode(freePort()))
	if err != nil {
		fmt.Println("start cache:", err)
		return
	}
	defer cache.Close()
	if err := cache.WaitReady(context.Background()); err != nil {
		fmt.Println("ready:", err)
		return
	}

	queries := 0
	loadUser := func(ctx context.Context) (User, error) {
		queries++ // e.g. SELECT name FROM users WHERE id = 42
		return User{Name: "Grace"}, nil
	}
	for range 3 {
		u, err := cache.GetOrLoad(context.Background(), "user:42", loadUser)
		if err != nil {
			fmt.Println("load:", err)
			return
		}
		fmt.Println(u.Name)
	}
	fmt.Println("queries:", queries)
	// Output:
	// Grace
	// Grace
	// Grace
	// queries: 1
}

// Two instances of a service in one process, talking over the mesh: a
// write on one drops the other's copy, which then reloads the new value.
func Example_twoInstances() {
	portA, portB := freePort(), freePort()
	a, err := presets.NewMeshEventual[User](localNode(portA))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer a.Close()
	b, err := presets.NewMeshEventual[User](localNode(portB, fmt.Sprintf("127.0.0.1:%d", portA)))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Close()
	if !waitUntil(func() bool {
		return len(a.Node().Members()) == 1 && len(b.Node().Members()) == 1 && a.Node().Ready() && b.Node().Ready()
	}) {
		fmt.Println("the instances did not find each other")
		return
	}

	db := map[string]User{"user:1": {Name: "Ada"}} // the source of truth
	load := func(context.Context) (User, error) { return db["user:1"], nil }

	u, _ := b.GetOrLoad(context.Background(), "user:1", load)
	fmt.Println("B cached:", u.Name)

	// Instance A updates the record and its cache.
	db["user:1"] = User{Name: "Ada Lovelace"}
	a.Set("user:1", db["user:1"])

	// B's copy is invalidated over the mesh; its next read reloads.
	waitUntil(func() bool { _, ok := b.Get("user:1"); return !ok })
	u, _ = b.GetOrLoad(context.Background(), "user:1", load)
	fmt.Println("B reloaded:", u.Name)
	// Output:
	// B cached: Ada
	// B reloaded: Ada Lovelace
}

// Several caches can share one node, each in its own namespace.
func ExampleNew() {
	node, err := engine.New(localNode(freePort()))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer node.Close()
	if err := node.WaitReady(context.Background()); err != nil {
		fmt.Println(err)
		return
	}

	users, err := presets.New[User](node, presets.WithNamespace("users"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer users.Close()
	sessions, err := presets.New[string](node, presets.WithNamespace("sessions"), presets.WithTTL(30*time.Minute))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer sessions.Close()

	users.Set("42", User{Name: "Ada"})  // travels as "users:42"
	sessions.Set("42", "token-for-ada") // travels as "sessions:42"
	u, _ := users.Get("42")
	s, _ := sessions.Get("42")
	fmt.Println(u.Name, s)
	// Output: Ada token-for-ada
}
