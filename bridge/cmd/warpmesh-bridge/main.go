package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/warpmesh/warpmesh/bridge"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stderr)
	stop()
	var ue *usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.As(err, &ue):
		fmt.Fprintln(os.Stderr, "warpmesh-bridge:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "warpmesh-bridge:", err)
		os.Exit(1)
	}
}

// run parses args, starts the bridge and serves until ctx ends.
func run(ctx context.Context, args []string, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "demo" {
		return runDemo(ctx, os.Stdout)
	}
	fs := newFlagSet(stderr)
	var f bridgeFlags
	f.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf("unexpected argument %q", fs.Arg(0))
	}
	log, err := f.logger(stderr)
	if err != nil {
		return err
	}
	opts, err := f.options(log)
	if err != nil {
		return err
	}
	var ln net.Listener
	if f.http != "" {
		if ln, err = net.Listen("tcp", f.http); err != nil {
			return usageErrorf("invalid --http=%q: %v", f.http, err)
		}
		defer ln.Close()
	}
	b, err := bridge.New(opts)
	var oe *bridge.OptionError
	if errors.As(err, &oe) {
		return &usageError{err}
	}
	if err != nil {
		return err
	}
	var srv *http.Server
	srvDone := make(chan error, 1)
	if ln != nil {
		srv = &http.Server{Handler: adminHandler(b), ReadHeaderTimeout: 5 * time.Second}
		log.Info("admin endpoint listening", "addr", ln.Addr().String())
		go func() { srvDone <- srv.Serve(ln) }()
	}
	var serveErr error
	select {
	case <-ctx.Done():
		log.Info("bridge stopping")
	case serveErr = <-srvDone:
	}
	if srv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		srv.Shutdown(sctx) // in-flight requests get two seconds; the bridge closes regardless
		cancel()
	}
	closeErr := b.Close()
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return fmt.Errorf("admin endpoint: %w", serveErr)
	}
	return closeErr
}

// usageError is a bad flag, argument or option: exit status 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usageErrorf(format string, a ...any) error { return &usageError{fmt.Errorf(format, a...)} }
