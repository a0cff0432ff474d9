//go:build linux

package bridge

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/warpmesh/warpmesh/presets"
	"golang.org/x/sys/unix"
)

// inNetns runs fn on an OS thread moved into network namespace name, so
// the sockets fn opens belong to it. The thread is discarded afterwards.
func inNetns(t *testing.T, name string, fn func()) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		f, err := os.Open("/var/run/netns/" + name)
		if err == nil {
			err = unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
			f.Close()
		}
		if err == nil {
			fn()
		}
		done <- err
	}()
	if err := <-done; err != nil {
		t.Fatalf("enter netns %s: %v", name, err)
	}
}

// rootDialer dials from the namespace the test process started in, so a
// bridge whose mesh lives in another namespace still reaches the
// nats-server on the root namespace's loopback.
type rootDialer struct{ root *os.File }

func (d rootDialer) Dial(network, address string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		if err := unix.Setns(int(d.root.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{nil, err}
			return
		}
		c, err := net.DialTimeout(network, address, 2*time.Second)
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

// Two meshes in two network namespaces of their own, with the same cluster
// name and the same ports — only NATS (on the root namespace's loopback)
// joins them.
func TestMeshesInSeparateNetworkNamespaces(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2 (ip) to create network namespaces")
	}
	root, err := os.Open("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	ns := startNATS(t, false)
	type side struct {
		cache *presets.Cache[string]
		log   *invLog
		b     *Bridge
	}
	var sides []*side
	for _, x := range []string{"X", "Y"} {
		name := fmt.Sprintf("wmbr%d-%s", os.Getpid(), x)
		if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
			t.Fatalf("ip netns add %s: %v: %s", name, err, out)
		}
		t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
		if out, err := exec.Command("ip", "-n", name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
			t.Fatalf("lo up in %s: %v: %s", name, err, out)
		}
		s := &side{log: newInvLog()}
		inNetns(t, name, func() {
			o := meshOptions("shared", "")
			o.Port, o.OnInvalidate = 17946, s.log.add
			if s.cache, err = presets.NewMeshEventual[string](o); err != nil {
				return
			}
			bo := meshOptions("shared", "127.0.0.1:17946")
			bo.Port = 17947
			s.b, err = New(Options{Mesh: bo, Name: x, NATSURL: ns.url(), KeepAlive: 100 * time.Millisecond,
				StreamTimeout: time.Second, Logger: quietLogger,
				NATSOptions: []nats.Option{nats.SetCustomDialer(rootDialer{root})}})
		})
		if err != nil {
			t.Fatalf("mesh %s: %v", x, err)
		}
		t.Cleanup(func() { s.b.Close(); s.cache.Close() })
		sides = append(sides, s)
	}
	x, y := sides[0], sides[1]
	waitFor(t, 10*time.Second, "both bridges import and hear each other", func() bool {
		return x.b.Leader() && y.b.Leader() && x.b.Stats().Meshes == 1 && y.b.Stats().Meshes == 1 &&
			x.cache.Stats().Flushes > 0 && y.cache.Stats().Flushes > 0
	})
	for _, s := range sides {
		if n := s.cache.Node().Stats().MembersAlive; n != 1 {
			t.Fatalf("a mesh sees %d members, want 1 (its bridge): the namespaces leak", n)
		}
	}
	if _, err := y.cache.GetOrLoad(t.Context(), "user:1", func(context.Context) (string, error) { return "v", nil }); err != nil {
		t.Fatal(err)
	}
	if err := x.cache.Delete("user:1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "X's delete in Y's cache", func() bool {
		_, ok := y.cache.Get("user:1")
		return !ok && y.log.count("user:1") == 1
	})
	if n := x.log.count("user:1"); n != 0 {
		t.Fatalf("X's own delete came back to X %d times", n)
	}
}
