package bridge

import (
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/warpmesh/warpmesh/engine"
	"github.com/warpmesh/warpmesh/internal/testnet"
	"github.com/warpmesh/warpmesh/presets"
)

var quietLogger = slog.New(slog.NewTextHandler(io.Discard, nil))

// natsServer is an embedded nats-server on 127.0.0.1 that a test can stop
// and start again on the same port (and JetStream store).
type natsServer struct {
	t     testing.TB
	port  int
	js    bool
	store string
	srv   *server.Server
}

func startNATS(t testing.TB, jetstream bool) *natsServer {
	t.Helper()
	ns := &natsServer{t: t, port: -1, js: jetstream}
	if jetstream {
		ns.store = t.TempDir()
	}
	ns.start()
	t.Cleanup(ns.stop)
	return ns
}

func (ns *natsServer) start() {
	ns.t.Helper()
	o := &server.Options{Host: "127.0.0.1", Port: ns.port, NoLog: true, NoSigs: true, JetStream: ns.js, StoreDir: ns.store}
	var err error
	for attempt := 0; attempt < 50; attempt++ { // a restart may race the old listener's close
		if ns.srv, err = server.NewServer(o); err != nil {
			ns.t.Fatalf("nats-server: %v", err)
		}
		go ns.srv.Start()
		if ns.srv.ReadyForConnections(5 * time.Second) {
			break
		}
		ns.srv.Shutdown()
		ns.srv = nil
		time.Sleep(20 * time.Millisecond) // retry pacing, not synchronisation
	}
	if ns.srv == nil {
		ns.t.Fatal("nats-server did not start")
	}
	ns.port = ns.srv.Addr().(*net.TCPAddr).Port
}

func (ns *natsServer) stop() {
	if ns.srv != nil {
		ns.srv.Shutdown()
		ns.srv.WaitForShutdown()
		ns.srv = nil
	}
}

func (ns *natsServer) url() string { return "nats://127.0.0.1:" + strconv.Itoa(ns.port) }

// meshOptions is a loopback, unicast-only node of cluster; seed may be
// invalid (the first node).
func meshOptions(cluster string, seed netipAddrPort) engine.Options {
	o := engine.Options{
		Port: engine.AnyPort, BindAddr: "127.0.0.1", UnicastOnly: true, Heartbeat: 100 * time.Millisecond,
		Cluster: cluster, Logger: quietLogger, PublishRing: 1 << 20, RecvBuffer: 4 << 20, SendBuffer: 4 << 20,
	}
	if seed != "" {
		o.Peers = []string{string(seed)}
	}
	return o
}

type netipAddrPort = string

// testMesh is one mesh: an application node with a presets cache, and its
// bridges. Meshes use distinct cluster names and ports: on loopback they
// reach each other only through NATS.
type testMesh struct {
	t       *testing.T
	name    string
	cache   *presets.Cache[string]
	app     *engine.Node
	log     *invLog
	bridges []*Bridge
	ns      *natsServer
	extra   func(*Options)
	// flushBase is the cache's flush count when settle last returned.
	flushBase uint64
}

func newTestMesh(t *testing.T, ns *natsServer, name string, bridges int, extra func(*Options)) *testMesh {
	t.Helper()
	m := &testMesh{t: t, name: name, ns: ns, extra: extra, log: newInvLog()}
	o := meshOptions(name, "")
	o.OnInvalidate = m.log.add
	c, err := presets.NewMeshEventual[string](o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	m.cache, m.app = c, c.Node()
	for range bridges {
		m.addBridge()
	}
	return m
}

func (m *testMesh) bridgeOptions() Options {
	o := Options{
		Mesh:          meshOptions(m.name, m.app.Addr().String()),
		NATSURL:       m.ns.url(),
		KeepAlive:     100 * time.Millisecond,
		StreamTimeout: time.Second,
		Logger:        quietLogger,
	}
	if m.extra != nil {
		m.extra(&o)
	}
	return o
}

func (m *testMesh) addBridge() *Bridge {
	m.t.Helper()
	b, err := New(m.bridgeOptions())
	if err != nil {
		m.t.Fatal(err)
	}
	m.t.Cleanup(func() { b.Close() })
	m.bridges = append(m.bridges, b)
	return b
}

// leaders counts the mesh's importing bridges.
func (m *testMesh) leaders() int {
	n := 0
	for _, b := range m.bridges {
		if b.Leader() {
			n++
		}
	}
	return n
}

func (m *testMesh) flushes() uint64 { return m.cache.Stats().Flushes }

// invLog counts the invalidations an application node applied, by key.
type invLog struct {
	mu     sync.Mutex
	counts map[string]int
	prefix map[string]bool
}

func newInvLog() *invLog { return &invLog{counts: map[string]int{}, prefix: map[string]bool{}} }

func (l *invLog) add(inv engine.Invalidation) {
	l.mu.Lock()
	l.counts[string(inv.Key)]++
	if inv.Prefix {
		l.prefix[string(inv.Key)] = true
	}
	l.mu.Unlock()
}

func (l *invLog) count(k string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.counts[k]
}

func (l *invLog) distinct() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.counts)
}

func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	testnet.WaitFor(t, d, what, cond)
}

// linked waits until every mesh has an importing bridge hearing every
// other mesh, and the bridges have joined their meshes.
func linked(t *testing.T, meshes ...*testMesh) {
	t.Helper()
	waitFor(t, 10*time.Second, "meshes linked through NATS", func() bool {
		for _, m := range meshes {
			if m.leaders() != 1 {
				return false
			}
			for _, b := range m.bridges {
				if b.Node().Stats().MembersAlive < len(m.bridges) || b.Stats().Meshes < len(meshes)-1 {
					return false
				}
			}
		}
		return true
	})
	settle(t, meshes...)
}

// settle waits until each mesh's application has applied the flushes its
// bridges declared (a takeover flush reaches the cache a round trip
// later), so a test's loads are not flushed behind its back.
func settle(t *testing.T, meshes ...*testMesh) {
	t.Helper()
	waitFor(t, 10*time.Second, "declared flushes applied", func() bool {
		for _, m := range meshes {
			var declared uint64
			for _, b := range m.bridges {
				declared += b.Stats().LossesDeclared
			}
			if min(declared, 1) > m.flushes()-m.flushBase {
				return false
			}
		}
		return true
	})
	for _, m := range meshes {
		m.flushBase = m.flushes()
	}
}

// cached reports whether key is in the mesh's cache.
func (m *testMesh) cached(key string) bool { _, ok := m.cache.Get(key); return ok }
