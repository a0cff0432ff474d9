package metrics

import (
	"fmt"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/warpmesh/warpmesh/engine"
)

// Namespace prefixes every metric name.
const Namespace = "warpmesh"

// counter is one monotonically growing field of engine.Stats.
type counter struct {
	desc  *prometheus.Desc
	value func(*engine.Stats) uint64
}

type gauge struct {
	desc  *prometheus.Desc
	value func(*engine.Stats) float64
}

// Collector exports one node's counters, member counts and events. Create
// it with New and register it with a prometheus.Registerer.
type Collector struct {
	node     *engine.Node
	counters []counter
	gauges   []gauge
	drops    *prometheus.Desc
	members  *prometheus.Desc
	buffers  *prometheus.Desc
	events   *prometheus.Desc
	missing  *prometheus.Desc
	info     *prometheus.Desc
	givenUp  *prometheus.Desc
	repair   *prometheus.Desc

	eventCounts [numEventTypes]atomic.Uint64 // indexed by engine.EventType
	gapMissing  atomic.Uint64
}

var _ prometheus.Collector = (*Collector)(nil)

// numEventTypes bounds engine.EventType values (join..ready are 1..7).
const numEventTypes = int(engine.EventReady) + 1

// eventTypes lists the event types exported as the type label.
var eventTypes = []engine.EventType{
	engine.EventJoin, engine.EventSuspect, engine.EventAlive,
	engine.EventDead, engine.EventLeave, engine.EventGap, engine.EventReady,
}

// memberStates lists the states exported as the state label.
var memberStates = []engine.MemberState{
	engine.StateAlive, engine.StateSuspect, engine.StateDead, engine.StateLeft,
}

// New returns a Collector over node. constLabels, which may be nil, are
// added to every metric (for example {"mesh": "sessions"} when a process
// runs several nodes). New subscribes to the node's events to count them;
// call it once per node.
func New(node *engine.Node, constLabels prometheus.Labels) *Collector {
	c := &Collector{node: node}
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", name), help, labels, constLabels)
	}
	for _, f := range statCounters {
		c.counters = append(c.counters, counter{desc: desc(f.name, f.help), value: f.value})
	}
	for _, g := range statGauges {
		c.gauges = append(c.gauges, gauge{desc: desc(g.name, g.help), value: g.value})
	}
	c.drops = desc("dropped_total", "Received datagrams discarded, by reason.", "reason")
	c.members = desc("members", "Other members this node knows, by state.", "state")
	c.buffers = desc("socket_buffer_bytes", "Socket buffer sizes granted by the kernel.", "direction")
	c.events = desc("events_total", "Membership and gap events seen by this node, by type.", "type")
	c.missing = desc("gap_missing_frames_total", "Frames reported missing by gap events (each one made caches flush).")
	c.givenUp = desc("gaps_given_up_total", "Gaps that could not be repaired (Gap events), by reason.", "reason")
	c.repair = desc("repair_latency_seconds", "Time from a gap opening to its repair.")
	c.info = desc("node_info", "Always 1; labels identify the node.", "id", "addr", "cluster", "epoch")
	node.OnEvent(c.count)
	return c
}

func (c *Collector) count(e engine.Event) {
	if int(e.Type) < numEventTypes {
		c.eventCounts[e.Type].Add(1)
	}
	if e.Type == engine.EventGap {
		c.gapMissing.Add(e.Gap.Missing)
	}
}

// Describe sends every descriptor the Collector can emit.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, f := range c.counters {
		ch <- f.desc
	}
	for _, g := range c.gauges {
		ch <- g.desc
	}
	for _, d := range []*prometheus.Desc{c.drops, c.members, c.buffers, c.events, c.missing, c.info, c.givenUp, c.repair} {
		ch <- d
	}
}

// Collect takes one Stats snapshot and sends every metric.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.node.Stats()
	for _, f := range c.counters {
		ch <- prometheus.MustNewConstMetric(f.desc, prometheus.CounterValue, float64(f.value(&s)))
	}
	for _, g := range c.gauges {
		ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, g.value(&s))
	}
	for _, r := range engine.DropReasons() {
		ch <- prometheus.MustNewConstMetric(c.drops, prometheus.CounterValue, float64(s.Drops[r]), r.String())
	}
	byState := [...]int{s.MembersAlive, s.MembersSuspect, s.MembersDead, s.MembersLeft}
	for i, st := range memberStates {
		ch <- prometheus.MustNewConstMetric(c.members, prometheus.GaugeValue, float64(byState[i]), st.String())
	}
	ch <- prometheus.MustNewConstMetric(c.buffers, prometheus.GaugeValue, float64(s.RecvBuffer), "recv")
	ch <- prometheus.MustNewConstMetric(c.buffers, prometheus.GaugeValue, float64(s.SendBuffer), "send")
	for _, t := range eventTypes {
		ch <- prometheus.MustNewConstMetric(c.events, prometheus.CounterValue, float64(c.eventCounts[t].Load()), t.String())
	}
	ch <- prometheus.MustNewConstMetric(c.missing, prometheus.CounterValue, float64(c.gapMissing.Load()))
	for i := 1; i < len(s.GapsGivenUp); i++ { // 0 is no reason
		ch <- prometheus.MustNewConstMetric(c.givenUp, prometheus.CounterValue, float64(s.GapsGivenUp[i]), engine.GapReason(i).String())
	}
	ch <- repairHistogram(c.repair, &s.RepairLatency)
	ch <- prometheus.MustNewConstMetric(c.info, prometheus.GaugeValue, 1,
		fmt.Sprintf("%016x", c.node.ID()), c.node.Addr().String(), c.node.Cluster(), fmt.Sprint(c.node.Epoch()))
}

// repairHistogram converts the engine's power-of-two microsecond buckets
// (bucket i counts durations below 2^i µs) to a cumulative Prometheus
// histogram in seconds.
func repairHistogram(d *prometheus.Desc, h *engine.LatencyHistogram) prometheus.Metric {
	buckets := make(map[float64]uint64, len(h.Buckets))
	var cum uint64
	for i, n := range h.Buckets[:len(h.Buckets)-1] { // the last is open-ended: +Inf
		cum += n
		buckets[float64(uint64(1)<<i)/1e6] = cum
	}
	return prometheus.MustNewConstHistogram(d, h.Count, h.Sum.Seconds(), buckets)
}
