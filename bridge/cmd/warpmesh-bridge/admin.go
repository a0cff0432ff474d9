package main

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/warpmesh/warpmesh/bridge"
	"github.com/warpmesh/warpmesh/metrics"
)

// The admin endpoint (--http):
//
//	GET /healthz  {"status":"ok","id":"…","mesh":"…","leader":b,"connected":b}
//	GET /readyz   200 while connected to NATS, 503 otherwise
//	GET /stats    statsDoc
//	GET /metrics  Prometheus: the node's warpmesh_* (metrics.Collector),
//	              the bridge's warpmesh_bridge_*, Go runtime

// statsDoc is the /stats response: bridge.Stats with stable names.
type statsDoc struct {
	ID               string            `json:"id"`
	Mesh             string            `json:"mesh"`
	Leader           bool              `json:"leader"`
	Connected        bool              `json:"connected"`
	Exported         uint64            `json:"exported"`
	ExportBatches    uint64            `json:"export_batches"`
	ExportBytes      uint64            `json:"export_bytes"`
	NotReexported    uint64            `json:"not_reexported"`
	ExportOverflow   uint64            `json:"export_overflow"`
	ExportErrors     uint64            `json:"export_errors"`
	LossFlagsSent    uint64            `json:"loss_flags_sent"`
	Imported         uint64            `json:"imported"`
	ImportBatches    uint64            `json:"import_batches"`
	ImportBytes      uint64            `json:"import_bytes"`
	Duplicates       uint64            `json:"duplicates"`
	Standby          uint64            `json:"standby"`
	Dropped          uint64            `json:"dropped"`
	Drops            map[string]uint64 `json:"drops"`
	Flushes          map[string]uint64 `json:"flushes"`
	FlushesCoalesced uint64            `json:"flushes_coalesced"`
	LossesDeclared   uint64            `json:"losses_declared"`
	Streams          int               `json:"streams"`
	Meshes           int               `json:"meshes_live"`
	MembersAlive     int               `json:"members_alive"`
}

func statsDocOf(b *bridge.Bridge) statsDoc {
	s := b.Stats()
	d := statsDoc{
		ID: fmt.Sprintf("%016x", b.Node().ID()), Mesh: b.Name(), Leader: s.Leader, Connected: s.Connected,
		Exported: s.Exported, ExportBatches: s.ExportBatches, ExportBytes: s.ExportBytes,
		NotReexported: s.NotReexported, ExportOverflow: s.ExportOverflow, ExportErrors: s.ExportErrors,
		LossFlagsSent: s.LossFlagsSent, Imported: s.Imported, ImportBatches: s.ImportBatches,
		ImportBytes: s.ImportBytes, Duplicates: s.Duplicates, Standby: s.Standby, Dropped: s.Dropped(),
		Drops: map[string]uint64{}, Flushes: map[string]uint64{}, FlushesCoalesced: s.FlushesCoalesced,
		LossesDeclared: s.LossesDeclared, Streams: s.Streams, Meshes: s.Meshes,
		MembersAlive: b.Node().Stats().MembersAlive,
	}
	for _, r := range bridge.DropReasons() {
		d.Drops[r.String()] = s.Drops[r]
	}
	for _, r := range bridge.FlushReasons() {
		d.Flushes[r.String()] = s.Flushes[r]
	}
	return d
}

// collector exports a bridge's counters as warpmesh_bridge_*.
type collector struct {
	b                                 *bridge.Bridge
	counters                          []counterDesc
	drops, flushes, leader, connected *prometheus.Desc
	streams, meshes                   *prometheus.Desc
}

type counterDesc struct {
	desc  *prometheus.Desc
	value func(*bridge.Stats) uint64
}

var _ prometheus.Collector = (*collector)(nil)

func newCollector(b *bridge.Bridge) *collector {
	name := func(n string) string { return prometheus.BuildFQName(metrics.Namespace, "bridge", n) }
	labels := prometheus.Labels{"mesh": b.Name()}
	c := &collector{b: b}
	add := func(n, help string, v func(*bridge.Stats) uint64) {
		c.counters = append(c.counters, counterDesc{prometheus.NewDesc(name(n), help, nil, labels), v})
	}
	add("exported_total", "Invalidations sent to NATS.", func(s *bridge.Stats) uint64 { return s.Exported })
	add("export_batches_total", "NATS messages sent, keep-alives included.", func(s *bridge.Stats) uint64 { return s.ExportBatches })
	add("export_bytes_total", "Bytes of batches sent.", func(s *bridge.Stats) uint64 { return s.ExportBytes })
	add("not_reexported_total", "Imported invalidations not sent back out.", func(s *bridge.Stats) uint64 { return s.NotReexported })
	add("export_overflow_total", "Invalidations dropped with a full export queue.", func(s *bridge.Stats) uint64 { return s.ExportOverflow })
	add("export_errors_total", "NATS publish errors.", func(s *bridge.Stats) uint64 { return s.ExportErrors })
	add("loss_flags_sent_total", "Batches sent with the loss flag.", func(s *bridge.Stats) uint64 { return s.LossFlagsSent })
	add("imported_total", "Invalidations published into this mesh.", func(s *bridge.Stats) uint64 { return s.Imported })
	add("import_batches_total", "NATS messages accepted.", func(s *bridge.Stats) uint64 { return s.ImportBatches })
	add("import_bytes_total", "Bytes of batches accepted.", func(s *bridge.Stats) uint64 { return s.ImportBytes })
	add("duplicates_total", "Records already applied (another bridge's copy, a replay).", func(s *bridge.Stats) uint64 { return s.Duplicates })
	add("standby_total", "Records not published while standing by.", func(s *bridge.Stats) uint64 { return s.Standby })
	add("losses_declared_total", "Flushes performed (a Gap in the mesh each).", func(s *bridge.Stats) uint64 { return s.LossesDeclared })
	c.drops = prometheus.NewDesc(name("dropped_total"), "NATS messages dropped, by reason.", []string{"reason"}, labels)
	c.flushes = prometheus.NewDesc(name("flushes_total"), "Flush requests, by reason.", []string{"reason"}, labels)
	c.leader = prometheus.NewDesc(name("leader"), "1 while this bridge imports for its mesh.", nil, labels)
	c.connected = prometheus.NewDesc(name("connected"), "1 while connected to NATS.", nil, labels)
	c.streams = prometheus.NewDesc(name("streams"), "Remote streams tracked.", nil, labels)
	c.meshes = prometheus.NewDesc(name("meshes_live"), "Remote meshes with a live stream.", nil, labels)
	return c
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, k := range c.counters {
		ch <- k.desc
	}
	for _, d := range []*prometheus.Desc{c.drops, c.flushes, c.leader, c.connected, c.streams, c.meshes} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.b.Stats()
	for _, k := range c.counters {
		ch <- prometheus.MustNewConstMetric(k.desc, prometheus.CounterValue, float64(k.value(&s)))
	}
	for _, r := range bridge.DropReasons() {
		ch <- prometheus.MustNewConstMetric(c.drops, prometheus.CounterValue, float64(s.Drops[r]), r.String())
	}
	for _, r := range bridge.FlushReasons() {
		ch <- prometheus.MustNewConstMetric(c.flushes, prometheus.CounterValue, float64(s.Flushes[r]), r.String())
	}
	b2f := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	ch <- prometheus.MustNewConstMetric(c.leader, prometheus.GaugeValue, b2f(s.Leader))
	ch <- prometheus.MustNewConstMetric(c.connected, prometheus.GaugeValue, b2f(s.Connected))
	ch <- prometheus.MustNewConstMetric(c.streams, prometheus.GaugeValue, float64(s.Streams))
	ch <- prometheus.MustNewConstMetric(c.meshes, prometheus.GaugeValue, float64(s.Meshes))
}

func adminHandler(b *bridge.Bridge) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.New(b.Node(), prometheus.Labels{"mesh": b.Name()}), newCollector(b),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "id": fmt.Sprintf("%016x", b.Node().ID()),
			"mesh": b.Name(), "leader": b.Leader(), "connected": b.Connected()})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if !b.Connected() {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "not connected to NATS"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok"})
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, statsDocOf(b))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v) // the client went away, or v is ours and encodes
}
