package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/warpmesh/warpmesh/engine"
)

// errNoMembers: the one-shot node found nobody to send to.
var errNoMembers = errors.New("no member reachable")

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(s string) error { *l = append(*l, s); return nil }

var _ flag.Value = (*stringList)(nil)

func runInvalidate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("invalidate", "invalidate [flags] KEY... (at least one KEY or --prefix)", stderr)
	var nf nodeFlags
	var lf logFlags
	var prefixes stringList
	nf.register(fs, 0)
	lf.register(fs)
	fs.Var(&prefixes, "prefix", "invalidate every key starting with `prefix` (repeatable)")
	wait := fs.Duration("wait", 5*time.Second, "how long to wait for a member to answer before giving up")
	minMembers := fs.Int("min-members", 1, "wait until this many `members` are alive before publishing")
	linger := fs.Duration("linger", 500*time.Millisecond, "stay in the mesh this long after sending, to answer repair requests")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	keys := fs.Args()
	if len(keys) == 0 && len(prefixes) == 0 {
		return usageErrorf("nothing to invalidate: give KEY arguments or --prefix")
	}
	for _, k := range append(append([]string{}, keys...), prefixes...) {
		if k == "" {
			return usageErrorf("empty key or prefix")
		}
	}
	if *wait <= 0 || *linger < 0 || *minMembers < 1 {
		return usageErrorf("--wait must be positive, --linger not negative, --min-members at least 1")
	}
	if nf.peers == "" && nf.group == "" && nf.unicastOnly {
		return usageErrorf("--unicast-only without --peers cannot reach anyone")
	}
	if lf.Level == "info" {
		lf.Level = "warn" // a one-shot tool is quiet unless asked
	}
	log, err := lf.logger(stderr)
	if err != nil {
		return err
	}
	opts, err := nf.options(log)
	if err != nil {
		return err
	}
	node, err := newNode(opts)
	if err != nil {
		return err
	}
	defer node.Close()

	members, err := awaitMembers(ctx, node, *minMembers, *wait)
	if err != nil {
		node.Abort()
		return err
	}
	for _, k := range keys {
		if err := node.Publish(ctx, []byte(k), false); err != nil {
			return fmt.Errorf("key %q: %w", k, err)
		}
	}
	for _, p := range prefixes {
		if err := node.Publish(ctx, []byte(p), true); err != nil {
			return fmt.Errorf("prefix %q: %w", p, err)
		}
	}
	total := uint64(len(keys) + len(prefixes))
	if err := poll(ctx, *wait, func() bool { return node.Stats().RecordsSent >= total }); err != nil {
		return fmt.Errorf("invalidations not sent: %w", err)
	}
	if *linger > 0 {
		select {
		case <-time.After(*linger):
		case <-ctx.Done():
		}
	}
	if err := node.Close(); err != nil {
		return err
	}
	s := node.Stats()
	fmt.Fprintf(stdout, "sent %d invalidation(s) to %d member(s)", total, members)
	if s.SendErrors > 0 {
		fmt.Fprintf(stdout, ", %d send error(s)", s.SendErrors)
	}
	fmt.Fprintln(stdout)
	return nil
}

// awaitMembers waits until at least min members are alive and then until
// the membership stops growing for a moment (one heartbeat from a seed
// carries a digest of the whole mesh), and returns how many are alive.
func awaitMembers(ctx context.Context, node *engine.Node, min int, wait time.Duration) (int, error) {
	alive := func() int { return node.Stats().MembersAlive }
	if err := poll(ctx, wait, func() bool { return alive() >= min }); err != nil {
		return alive(), fmt.Errorf("%w within %v (%d of %d alive)", errNoMembers, wait, alive(), min)
	}
	const settle = 50 * time.Millisecond
	last, since := alive(), time.Now()
	deadline := time.Now().Add(wait)
	for time.Since(since) < settle && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond) // polling interval
		if n := alive(); n != last {
			last, since = n, time.Now()
		}
	}
	return last, nil
}

// poll checks cond every few milliseconds until it holds, d passes or ctx
// is done.
func poll(ctx context.Context, d time.Duration, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return context.DeadlineExceeded
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
	return nil
}
