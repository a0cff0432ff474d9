package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/warpmesh/warpmesh/internal/testnet"
)

func TestUsageErrorsNameTheFlag(t *testing.T) {
	cases := map[string][]string{
		"--port":          {"--port", "0"},
		"--nats-password": {"--nats-password", "x"},
		"--nats-tls-cert": {"--nats-tls-cert", "c.pem"},
		"--durable":       {"--durable", "d"},
		"Name":            {"--name", "a.b"},
		"Remotes":         {"--jetstream"},
		"--key-file":      {"--key-file", "/nonexistent"},
	}
	for want, args := range cases {
		err := run(context.Background(), args, io.Discard)
		var ue *usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), want) {
			t.Errorf("%v: err %v, want a usage error naming %s", args, err, want)
		}
	}
}

// The bridge runs from flags and WARPMESH_* variables, serves its admin
// endpoint, and stops on cancel.
func TestRunServesAdmin(t *testing.T) {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(5 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	defer ns.Shutdown()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	port := testnet.FreePorts(t, 1)[0]
	t.Setenv("WARPMESH_NATS_URL", "nats://"+ns.Addr().String())
	t.Setenv("WARPMESH_CLUSTER", "east")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var stderr bytes.Buffer
	go func() {
		done <- run(ctx, []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--unicast-only",
			"--peers", "127.0.0.1:" + strconv.Itoa(port), "--http", addr, "--keepalive", "50ms"}, &stderr)
	}()
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return 0, ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	testnet.WaitFor(t, 10*time.Second, "/readyz 200", func() bool { c, _ := get("/readyz"); return c == 200 })
	if c, body := get("/stats"); c != 200 || !strings.Contains(body, `"mesh": "east"`) {
		t.Fatalf("/stats %d %s", c, body)
	}
	if c, body := get("/metrics"); c != 200 || !strings.Contains(body, `warpmesh_bridge_export_batches_total{mesh="east"}`) ||
		!strings.Contains(body, `warpmesh_bridge_dropped_total{mesh="east",reason="bad_magic"}`) {
		t.Fatalf("/metrics %d lacks bridge metrics", c)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v (%s)", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not stop on cancel")
	}
}

func TestDemo(t *testing.T) {
	var out bytes.Buffer
	if err := runDemo(context.Background(), &out); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	for _, want := range []string{"gone from west and south", "100000 invalidations", "west flushed its cache (user:7 cached: false)", "bridges reconnected"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("demo output lacks %q:\n%s", want, out.String())
		}
	}
}
