package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/warpmesh/warpmesh/engine"
)

func runNode(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("node", "node [flags]", stderr)
	var nf nodeFlags
	var lf logFlags
	nf.register(fs, 7946)
	lf.register(fs)
	httpAddr := fs.String("http", "", "serve the admin endpoint on `addr` (host:port): /healthz /readyz /members /stats /metrics, POST /invalidate")
	grace := fs.Duration("shutdown-grace", 10*time.Second, "on SIGTERM/SIGINT, how long the graceful leave (admin endpoint drained, pending invalidations sent, leave announced) may take before the node exits anyway; keep it below the orchestrator's grace period (Kubernetes: terminationGracePeriodSeconds)")
	tokenFile := fs.String("http-token-file", "", "`file` holding a bearer token the admin endpoint requires on every route but /healthz and /readyz")
	print := fs.Bool("print", false, "write one line per applied invalidation and membership/gap event to stdout (format: see package doc)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf("unexpected argument %q", fs.Arg(0))
	}
	if *grace <= 0 {
		return usageErrorf("invalid --shutdown-grace=%v: must be positive", *grace)
	}
	log, err := lf.logger(stderr)
	if err != nil {
		return err
	}
	opts, err := nf.options(log)
	if err != nil {
		return err
	}
	var admin adminConfig
	if *tokenFile != "" {
		if *httpAddr == "" {
			return usageErrorf("--http-token-file needs --http")
		}
		if admin.token, err = readToken(*tokenFile); err != nil {
			return usageErrorf("invalid --http-token-file=%q: %v", *tokenFile, err)
		}
	}
	var ln net.Listener
	if *httpAddr != "" {
		if ln, err = net.Listen("tcp", *httpAddr); err != nil {
			return usageErrorf("invalid --http=%q: %v", *httpAddr, err)
		}
		defer ln.Close()
	}
	var out *printer
	if *print {
		// Registered through Options, before the node starts receiving, so
		// nothing that arrives during New is missed; the printer holds those
		// lines until the self line.
		out = newHeldPrinter(stdout)
		opts.OnInvalidate = out.invalidation
		opts.OnEvent = out.event
	}
	node, err := newNode(opts)
	if err != nil {
		if out != nil {
			out.close() // drops the held lines: no node, no self line
		}
		return err
	}
	if out != nil {
		out.self(node)
	}
	log.Info("warpmesh node started", "id", fmt.Sprintf("%016x", node.ID()), "addr", node.Addr(),
		"bound", node.LocalAddr(), "cluster", node.Cluster(), "peers", opts.Peers)

	var srv *http.Server
	srvDone := make(chan error, 1)
	if ln != nil {
		srv = &http.Server{Handler: adminHandler(node, admin), ReadHeaderTimeout: 5 * time.Second}
		addr, _ := netip.ParseAddrPort(ln.Addr().String()) // a TCP listener's address always parses
		if out != nil {
			out.http(addr)
		}
		log.Info("admin endpoint listening", "addr", addr)
		go func() { srvDone <- srv.Serve(ln) }()
	}

	var serveErr error
	select {
	case <-ctx.Done():
		log.Info("leaving the mesh", "grace", *grace)
	case serveErr = <-srvDone:
	}
	closeErr := leave(node, srv, *grace)
	if out != nil {
		if err := out.close(); err != nil && closeErr == nil {
			closeErr = fmt.Errorf("--print: %w", err)
		}
	}
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return fmt.Errorf("admin endpoint: %w", serveErr)
	}
	return closeErr
}

// leave shuts the node down within grace: the admin endpoint gets a third
// of it for in-flight requests, then the node leaves the mesh (pending
// invalidations sent, a leave to every member). If that does not finish in
// time the node is abandoned and an error says so; the process exits
// either way, before the orchestrator's own grace period runs out.
func leave(node *engine.Node, srv *http.Server, grace time.Duration) error {
	deadline := time.Now().Add(grace)
	if srv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), grace/3)
		srv.Shutdown(sctx) // the node leaves whether or not every request finished
		cancel()
	}
	done := make(chan error, 1)
	go func() { done <- node.Close() }()
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return fmt.Errorf("graceful leave did not finish within --shutdown-grace=%v", grace)
	}
}
