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
)

func runNode(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("node", "node [flags]", stderr)
	var nf nodeFlags
	var lf logFlags
	nf.register(fs, 7946)
	lf.register(fs)
	httpAddr := fs.String("http", "", "serve the admin endpoint on `addr` (host:port): /healthz /readyz /members /stats /metrics, POST /invalidate")
	print := fs.Bool("print", false, "write one line per applied invalidation and membership/gap event to stdout (format: see package doc)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf("unexpected argument %q", fs.Arg(0))
	}
	log, err := lf.logger(stderr)
	if err != nil {
		return err
	}
	opts, err := nf.options(log)
	if err != nil {
		return err
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
		srv = &http.Server{Handler: adminHandler(node), ReadHeaderTimeout: 5 * time.Second}
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
		log.Info("leaving the mesh")
	case serveErr = <-srvDone:
	}
	if srv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		srv.Shutdown(sctx) // in-flight requests get two seconds; the node leaves regardless
		cancel()
	}
	closeErr := node.Close()
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
