package main

import (
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/warpmesh/warpmesh/engine"
	"github.com/warpmesh/warpmesh/presets"
)

// demoNode is one member of the demo mesh: an engine node, the preset cache
// an application would embed on it, and the demo's bookkeeping.
type demoNode struct {
	idx   int
	name  string // n1, n2, …
	port  int
	node  *engine.Node
	cache *presets.Cache[string]
	rx    *receipts
	gaps  gapCount
}

// gapCount sums the Gap events a node saw: invalidations it was told it
// may have missed (its cache flushed for each).
type gapCount struct {
	mu      sync.Mutex
	events  int
	missing uint64
}

func (g *gapCount) get() (events int, missing uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.events, g.missing
}

// seenEvent is a membership event as one observer saw it, timestamped.
type seenEvent struct {
	observer int
	at       time.Time
	ev       engine.Event
}

// eventLog collects every node's membership events for the failure phase.
type eventLog struct {
	mu     sync.Mutex
	events []seenEvent
}

func (l *eventLog) add(observer int, e engine.Event) {
	l.mu.Lock()
	l.events = append(l.events, seenEvent{observer: observer, at: time.Now(), ev: e})
	l.mu.Unlock()
}

// firsts returns, per observer, when it first saw an event of type typ
// about id after since, satisfying match (nil: any).
func (l *eventLog) firsts(typ engine.EventType, id uint64, since time.Time, match func(engine.Event) bool) map[int]time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[int]time.Time)
	for _, s := range l.events {
		if s.ev.Type != typ || s.ev.Member.ID != id || s.at.Before(since) || (match != nil && !match(s.ev)) {
			continue
		}
		if _, ok := out[s.observer]; !ok {
			out[s.observer] = s.at
		}
	}
	return out
}

// demoMesh is the set of nodes of one demo run.
type demoMesh struct {
	cfg     demoConfig
	cluster string
	start   time.Time // the shared clock of the demo keys
	nodes   []*demoNode
	log     eventLog
	logger  *slog.Logger
}

// options returns the engine options of node i: loopback only, unicast,
// node 0 as the seed of everyone else.
func (m *demoMesh) options(i, port int, id uint64) engine.Options {
	o := engine.Options{
		Port:         port,
		BindAddr:     "127.0.0.1",
		UnicastOnly:  true,
		Cluster:      m.cluster,
		NodeID:       id,
		Heartbeat:    m.cfg.heartbeat,
		SuspectAfter: 3 * m.cfg.heartbeat,
		DeadAfter:    6 * m.cfg.heartbeat,
		Logger:       m.logger,
	}
	if i > 0 {
		o.Peers = []string{fmt.Sprintf("127.0.0.1:%d", m.nodes[0].port)}
	}
	return o
}

// startNode starts (or restarts) node i on port with id (0: random).
func (m *demoMesh) startNode(i, port int, id uint64) (*demoNode, error) {
	d := &demoNode{idx: i, name: fmt.Sprintf("n%d", i+1), rx: newReceipts(m.cfg.nodes, m.start)}
	o := m.options(i, port, id)
	// Registered through Options so nothing arriving during New is missed.
	// The receipt handler goes first so the cache's own work does not count
	// in the measured latency.
	o.OnInvalidate = func(inv engine.Invalidation) { d.rx.handle(inv.Key, time.Since(m.start)) }
	o.OnEvent = func(e engine.Event) {
		if e.Type == engine.EventGap {
			d.gaps.mu.Lock()
			d.gaps.events++
			d.gaps.missing += e.Gap.Missing
			d.gaps.mu.Unlock()
			return
		}
		m.log.add(i, e)
	}
	n, err := engine.New(o)
	if err != nil {
		return nil, fmt.Errorf("node n%d: %w", i+1, err)
	}
	d.port, d.node = int(n.Addr().Port()), n
	d.cache, err = presets.New[string](n, presets.WithMaxEntries(1024))
	if err != nil {
		n.Close()
		return nil, fmt.Errorf("node n%d cache: %w", i+1, err)
	}
	return d, nil
}

// live returns the nodes that are running.
func (m *demoMesh) live() []*demoNode {
	var out []*demoNode
	for _, d := range m.nodes {
		if d != nil {
			out = append(out, d)
		}
	}
	return out
}

func (m *demoMesh) close() {
	for _, d := range m.live() {
		d.cache.Close()
		d.node.Close()
	}
}
