package metrics

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/warpmesh/warpmesh/engine"
)

func freePorts(t *testing.T, n int) []int {
	t.Helper()
	ports := make([]int, n)
	conns := make([]*net.UDPConn, n)
	for i := range conns {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		conns[i], ports[i] = c, c.LocalAddr().(*net.UDPAddr).Port
	}
	for _, c := range conns {
		c.Close()
	}
	return ports
}

func startNode(t *testing.T, port int, seeds ...int) *engine.Node {
	t.Helper()
	o := engine.Options{
		Port: port, BindAddr: "127.0.0.1", UnicastOnly: true, Cluster: "metrics-test",
		Heartbeat: 20 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		PublishRing: 1 << 16, RecvBuffer: 1 << 20, SendBuffer: 1 << 20,
	}
	for _, s := range seeds {
		o.Peers = append(o.Peers, fmt.Sprintf("127.0.0.1:%d", s))
	}
	n, err := engine.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond) // polling interval, not synchronisation
	}
}

// gather returns every sample as "name{label=value,...}" → value.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]float64)
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			key := f.GetName()
			labels := ""
			for _, l := range m.GetLabel() {
				if l.GetName() == "id" || l.GetName() == "addr" || l.GetName() == "epoch" {
					continue // per-run values
				}
				if labels != "" {
					labels += ","
				}
				labels += l.GetName() + "=" + l.GetValue()
			}
			if labels != "" {
				key += "{" + labels + "}"
			}
			out[key] = value(f.GetType(), m)
		}
	}
	return out
}

func value(t dto.MetricType, m *dto.Metric) float64 {
	switch t {
	case dto.MetricType_COUNTER:
		return m.GetCounter().GetValue()
	case dto.MetricType_GAUGE:
		return m.GetGauge().GetValue()
	}
	return -1
}

func TestCollectorNamesAndValues(t *testing.T) {
	p := freePorts(t, 2)
	// b counts events from New on, so it meets a only after.
	b := startNode(t, p[1])
	reg := prometheus.NewRegistry()
	if err := reg.Register(New(b, nil)); err != nil {
		t.Fatal(err)
	}
	a := startNode(t, p[0], p[1])
	waitFor(t, "b to know a", func() bool { return b.Stats().MembersAlive == 1 })
	for i := range 10 {
		if err := a.Invalidate(fmt.Sprint("k", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Invalidate("from-b"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b to apply a's keys", func() bool { return b.Stats().RecordsReceived == 10 })
	waitFor(t, "b ready", b.Ready)

	a.Abort()
	waitFor(t, "b to declare a dead", func() bool { return b.Stats().MembersDead == 1 })
	// The event goroutine may lag the member table by a moment.
	waitFor(t, "the dead event to be counted", func() bool { return gather(t, reg)[`warpmesh_events_total{type=dead}`] == 1 })

	got := gather(t, reg)
	want := map[string]float64{
		"warpmesh_published_total":                     1,
		"warpmesh_records_sent_total":                  1,
		"warpmesh_records_received_total":              10,
		"warpmesh_members{state=alive}":                0,
		"warpmesh_members{state=dead}":                 1,
		"warpmesh_members{state=suspect}":              0,
		"warpmesh_members{state=left}":                 0,
		"warpmesh_events_total{type=join}":             1,
		"warpmesh_events_total{type=dead}":             1,
		"warpmesh_events_total{type=gap}":              0,
		"warpmesh_dropped_total{reason=bad_magic}":     0,
		"warpmesh_dropped_total{reason=own}":           0,
		"warpmesh_gap_missing_frames_total":            0,
		"warpmesh_node_info{cluster=metrics-test}":     1,
		"warpmesh_socket_buffer_bytes{direction=recv}": float64(b.Stats().RecvBuffer),
		"warpmesh_ready":                               1, // b asked a and was answered before a died
		"warpmesh_events_total{type=ready}":            1,
	}
	for k, v := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("missing %s", k)
			continue
		}
		if g != v {
			t.Errorf("%s = %v, want %v", k, g, v)
		}
	}
	for _, k := range []string{"warpmesh_frames_received_total", "warpmesh_heartbeats_received_total", "warpmesh_bytes_received_total",
		"warpmesh_validations_total", "warpmesh_challenges_sent_total"} {
		if got[k] <= 0 {
			t.Errorf("%s = %v, want > 0", k, got[k])
		}
	}
	if _, ok := got["warpmesh_repair_latency_seconds"]; !ok {
		t.Error("no repair latency histogram")
	}
	for _, r := range engine.DropReasons() {
		if _, ok := got["warpmesh_dropped_total{reason="+r.String()+"}"]; !ok {
			t.Errorf("no drop series for reason %s", r)
		}
	}
}

func TestCollectorConstLabels(t *testing.T) {
	p := freePorts(t, 1)
	n := startNode(t, p[0])
	reg := prometheus.NewRegistry()
	reg.MustRegister(New(n, prometheus.Labels{"mesh": "m1"}))
	got := gather(t, reg)
	if _, ok := got["warpmesh_frames_sent_total{mesh=m1}"]; !ok {
		t.Errorf("const label missing; got %d series", len(got))
	}
	// A second collector for the same node and labels must be refused, not
	// silently double-counted.
	if err := reg.Register(New(n, prometheus.Labels{"mesh": "m1"})); err == nil {
		t.Error("duplicate registration accepted")
	}
}
