package presets

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/warpmesh/warpmesh/codec"
	"github.com/warpmesh/warpmesh/engine"
)

// Invalidator is a local cache the mesh can invalidate: one a service
// already runs (otter, golang-lru, ristretto, its own map) and wires to a
// node with Attach instead of moving to Cache. The adapters modules
// (github.com/warpmesh/warpmesh/adapters/otter, adapters/lru) implement it
// for otter v2 and golang-lru/v2.
//
// Methods are called on the node's goroutines, possibly concurrently with
// the application's use of the cache, so the cache must be safe for
// concurrent use. They should not block for long: they hold up the
// invalidations behind them.
type Invalidator interface {
	// Invalidate drops key, if the cache holds it. key is a view into a
	// packet buffer, valid only during the call: copy it to keep it.
	Invalidate(key []byte)
	// InvalidateAll drops every entry.
	InvalidateAll()
}

// PrefixInvalidator is an Invalidator that can also drop every key with a
// prefix. A cache that is not one is flushed whole by a prefix
// invalidation.
type PrefixInvalidator interface {
	Invalidator
	// InvalidatePrefix drops every key starting with prefix (every key for
	// an empty prefix). prefix is valid only during the call.
	InvalidatePrefix(prefix []byte)
}

// Attachment is an Invalidator wired to a node by Attach: it applies the
// invalidations other members publish, with the rules of Cache:
//
//   - an invalidation of a key from another member drops it (the node's own
//     invalidations, delivered with engine.Options.EchoLocal, are ignored);
//   - a prefix invalidation drops the prefix, or everything when the cache
//     is not a PrefixInvalidator;
//   - an engine.EventGap, meaning invalidations may have been missed,
//     drops everything, so a lost invalidation never leaves a stale entry;
//   - engine.EventReady, the node becoming coherent with the mesh after it
//     was not (engine.Node.Ready), drops everything too: until then the
//     node may not have been sent every invalidation, so whatever the cache
//     stored before may be stale.
//
// The attachment cannot keep the application from serving what the cache
// holds while invalidations may be missing (a Gap not flushed for yet, a
// member silent for SuspectAfter); Trusted says when it may, for an
// application that wants Cache's staleness bound.
//
// With WithNamespace, only mesh keys in the namespace apply, stripped of
// it; Invalidate and InvalidatePrefix publish in it.
//
// The application still writes to its cache directly; after changing the
// source of a value it calls Invalidate so the other members drop their
// copies. Unlike Cache, which stores nothing until its node is ready, an
// attached cache stores what it is given at any time: values stored before
// the node is ready may be stale (an invalidation published before this
// node was in an origin's fan-out never reaches it). The flush on
// EventReady removes them; to avoid serving them meanwhile, fill the cache
// only after WaitReady.
type Attachment struct {
	node        *engine.Node
	nodeID      uint64
	cache       Invalidator
	prefix      PrefixInvalidator // nil when cache cannot drop a prefix
	wire        string            // namespace + separator, or ""
	closed      atomic.Bool
	unsubscribe []func()
	// flushOnReady is set while the node was not ready at Attach and the
	// flush it owes on becoming ready has not happened.
	flushOnReady atomic.Bool
	// gapsFlushed is the node's GapsRaised read before the last flush on
	// a Gap began (Trusted).
	gapsFlushed atomic.Uint64

	remote, prefixes, flushes atomic.Uint64
}

// AttachStats is a snapshot of an Attachment's counters. Counters only
// grow.
type AttachStats struct {
	RemoteInvalidations uint64 // invalidations from other members applied (exact and prefix)
	PrefixInvalidations uint64 // of which prefixes
	Flushes             uint64 // InvalidateAll calls: on a Gap, on becoming ready, or for a prefix the cache cannot drop
}

// Attach wires cache to node: from now on, what other members invalidate
// is dropped from cache, and a Gap or the node becoming ready flushes it. Of the cache options only
// WithNamespace applies; any other returns an *OptionError. Close the
// Attachment to detach; the node stays open.
func Attach(node *engine.Node, cache Invalidator, options ...Option) (*Attachment, error) {
	if node == nil {
		return nil, ErrNilNode
	}
	if cache == nil {
		return nil, &OptionError{"Attach", nil, "nil Invalidator"}
	}
	for i, o := range options {
		if o.apply != nil && o.name != "WithNamespace" {
			return nil, &OptionError{o.name, i, "does not apply to Attach (only WithNamespace does)"}
		}
	}
	cfg, err := resolve(options)
	if err != nil {
		return nil, err
	}
	a := &Attachment{node: node, nodeID: node.ID(), cache: cache}
	a.gapsFlushed.Store(node.GapsRaised())
	a.prefix, _ = cache.(PrefixInvalidator)
	if cfg.namespace != "" {
		a.wire = cfg.namespace + string(rune(NamespaceSeparator))
	}
	// EventReady comes once, and may reach a handler subscribed after the
	// node became ready: only an Attach that saw the node not ready owes a
	// flush, taken by whichever of the handler and the check below comes
	// first (the event may have been delivered before the subscription).
	a.flushOnReady.Store(!node.Ready())
	a.unsubscribe = append(a.unsubscribe, node.OnInvalidate(a.onInvalidate), node.OnEvent(a.onEvent))
	if node.Ready() && a.flushOnReady.CompareAndSwap(true, false) {
		a.flush()
	}
	return a, nil
}

// WaitReady blocks until the node is ready (engine.Node.WaitReady), ctx is
// done or the node closes. The cache is flushed as the node becomes ready.
func (a *Attachment) WaitReady(ctx context.Context) error { return a.node.WaitReady(ctx) }

// Trusted reports whether what the attached cache holds may be served now
// within the mesh's staleness bound, as Cache serves it: the node is ready,
// no Gap is pending that the attachment has not flushed for (raised, or an
// open gap overdue: engine.Node.GapPending), and no member has been silent
// for SuspectAfter (engine.Node.Silent). The attachment cannot see the
// application's reads; an application that wants Cache's promise checks
// Trusted before serving a hit and, when it is false, reads the source of
// truth instead (what it then stores is dropped by the flush that follows
// a Gap, or by the invalidations that follow a silence). It does not
// allocate: a few atomic loads and, with members, a clock read.
func (a *Attachment) Trusted() bool {
	return a.node.Ready() && !a.node.GapPending(a.gapsFlushed.Load()) && !a.node.Silent()
}

// Node returns the node the attachment listens and publishes on.
func (a *Attachment) Node() *engine.Node { return a.node }

// Invalidate tells every other member to drop key (in the namespace). The
// local cache is left alone: the application has just written it. It does
// not allocate when the namespaced key fits 256 bytes.
func (a *Attachment) Invalidate(key string) error { return a.publish(key, false) }

// InvalidatePrefix tells every other member to drop every key starting
// with prefix. With a namespace, an empty prefix names the whole
// namespace; without one, it returns ErrInvalidKey.
func (a *Attachment) InvalidatePrefix(prefix string) error { return a.publish(prefix, true) }

func (a *Attachment) publish(key string, prefix bool) error {
	if key != "" || !prefix || a.wire == "" {
		if err := checkWireKey(a.wire, key); err != nil {
			return err
		}
	}
	if a.closed.Load() {
		return ErrClosed
	}
	var buf [256]byte // the wire key is built on the stack when it fits
	b := append(append(buf[:0], a.wire...), key...)
	if err := a.node.Publish(context.Background(), b, prefix); err != nil {
		return fmt.Errorf("presets: publish invalidation of %q: %w", key, err)
	}
	return nil
}

// Stats returns a snapshot of the attachment's counters.
func (a *Attachment) Stats() AttachStats {
	return AttachStats{
		RemoteInvalidations: a.remote.Load(),
		PrefixInvalidations: a.prefixes.Load(),
		Flushes:             a.flushes.Load(),
	}
}

// Close detaches the cache from the node: nothing more is applied to it,
// and Invalidate returns ErrClosed. The cache keeps its entries and the
// node stays open. Close is idempotent.
func (a *Attachment) Close() error {
	if !a.closed.CompareAndSwap(false, true) {
		return nil
	}
	for _, u := range a.unsubscribe {
		u()
	}
	return nil
}

// onInvalidate applies an invalidation from another member. It runs on
// the node's receive goroutine; inv.Key is passed on as a view.
func (a *Attachment) onInvalidate(inv engine.Invalidation) {
	if inv.Origin == a.nodeID || a.closed.Load() {
		return
	}
	key, ok := stripNamespace(a.wire, inv.Key)
	if !ok {
		return
	}
	a.remote.Add(1)
	if inv.Prefix {
		a.prefixes.Add(1)
		if a.prefix != nil {
			a.prefix.InvalidatePrefix(key)
			return
		}
		a.flush()
		return
	}
	if len(key) == 0 {
		return // the bare namespace as an exact key names no entry
	}
	a.cache.Invalidate(key)
}

// onEvent flushes the cache on a Gap, and when the node becomes ready if
// it was not at Attach.
func (a *Attachment) onEvent(e engine.Event) {
	if a.closed.Load() {
		return
	}
	switch {
	case e.Type == engine.EventGap:
		g := a.node.GapsRaised() // read first: a Gap raised during the flush is not covered by it
		a.flush()
		a.gapsFlushed.Store(max(g, a.gapsFlushed.Load()))
	case e.Type == engine.EventReady && a.flushOnReady.CompareAndSwap(true, false):
		a.flush()
	}
}

func (a *Attachment) flush() {
	a.cache.InvalidateAll()
	a.flushes.Add(1)
}

// checkWireKey checks that key is a valid cache key under the wire prefix
// (namespace and separator, or "").
func checkWireKey(wire, key string) error {
	switch {
	case key == "":
		return fmt.Errorf("%w: empty", ErrInvalidKey)
	case len(wire)+len(key) > codec.MaxKeyLen:
		return fmt.Errorf("%w: %d bytes with namespace, more than %d", ErrInvalidKey, len(wire)+len(key), codec.MaxKeyLen)
	}
	return nil
}

// stripNamespace returns the part of a mesh key after the wire prefix; ok
// is false when the key is in another namespace. It does not allocate.
func stripNamespace(wire string, key []byte) ([]byte, bool) {
	if len(key) < len(wire) || string(key[:len(wire)]) != wire {
		return nil, false
	}
	return key[len(wire):], true
}
