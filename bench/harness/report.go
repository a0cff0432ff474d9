package harness

import (
	"fmt"
	"io"
	"strings"
)

func (r Result) line() string {
	if r.Err != "" {
		return "error: " + r.Err
	}
	if r.Mode == Latency {
		return fmt.Sprintf("p50 %.0fµs p99 %.0fµs p99.9 %.0fµs max %.0fµs loss %.2f%% other %.2f cores", r.Lat.P50, r.Lat.P99, r.Lat.P999, r.Lat.Max, r.LossPct, r.CPU.Other)
	}
	return fmt.Sprintf("%.3fM/s per receiver (min), sent %d, loss %.2f%%, drops %d, other %.2f cores", r.MinRate/1e6, r.Sent, r.LossPct, r.Drops, r.CPU.Other)
}

func (c CPU) cells() string {
	var rx float64
	for _, v := range c.Receivers {
		rx += v
	}
	return fmt.Sprintf("%.2f | %.2f | %.2f | %.2f", c.Publisher, rx, c.Helpers, c.Other)
}

func attempts(r Result) string {
	s := fmt.Sprint(r.Attempts)
	if r.Disturbed {
		s += " (disturbed)"
	}
	return s
}

// PrintTables writes one markdown table per workload. Ratios compare the
// reference system (Warp Mesh) with each row of the same layout and key
// size: delivered rate ref/row for throughput (higher is better for ref),
// p99 row/ref for latency (how many times lower the ref's p99 is).
func PrintTables(w io.Writer, results []Result, ref string) {
	find := func(r Result) (Result, bool) {
		for _, o := range results {
			if o.System == ref && o.Mode == r.Mode && o.Receivers == r.Receivers && o.KeySize == r.KeySize && o.Rate == r.Rate && o.Err == "" {
				return o, true
			}
		}
		return Result{}, false
	}
	var tp, lat []Result
	for _, r := range results {
		if r.Mode == Latency {
			lat = append(lat, r)
		} else {
			tp = append(tp, r)
		}
	}
	if len(tp) > 0 {
		fmt.Fprintf(w, "\n### Throughput: delivered invalidations/s per receiver (slowest receiver), %gs runs\n\n", tp[0].Seconds)
		fmt.Fprintln(w, "| system | layout | key B | delivered/s per receiver | loss % | drops | "+ref+" ÷ system | CPU pub | CPU recv | CPU broker | CPU other | runs |")
		fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|")
		for _, r := range tp {
			if r.Err != "" {
				fmt.Fprintf(w, "| %s | 1→%d | %d | error: %s | | | | | | | | %s |\n", r.System, r.Receivers, r.KeySize, strings.ReplaceAll(r.Err, "|", "/"), attempts(r))
				continue
			}
			ratio := "—"
			if o, ok := find(r); ok && r.MinRate > 0 {
				ratio = fmt.Sprintf("%.2f×", o.MinRate/r.MinRate)
			}
			fmt.Fprintf(w, "| %s | 1→%d | %d | %s | %.2f | %d | %s | %s | %s |\n", r.System, r.Receivers, r.KeySize, rate(r.MinRate), r.LossPct, r.Drops, ratio, r.CPU.cells(), attempts(r))
		}
	}
	if len(lat) > 0 {
		fmt.Fprintf(w, "\n### Latency: publish-to-apply, fixed rate, %d-byte keys, %gs runs (µs; worst receiver)\n\n", lat[0].KeySize, lat[0].Seconds)
		fmt.Fprintln(w, "| system | layout | rate/s | p50 | p99 | p99.9 | max | loss % | system p99 ÷ "+ref+" p99 | CPU pub | CPU recv | CPU broker | CPU other | runs |")
		fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
		for _, r := range lat {
			if r.Err != "" {
				fmt.Fprintf(w, "| %s | 1→%d | %d | error: %s | | | | | | | | | | %s |\n", r.System, r.Receivers, r.Rate, strings.ReplaceAll(r.Err, "|", "/"), attempts(r))
				continue
			}
			ratio := "—"
			if o, ok := find(r); ok && o.Lat.P99 > 0 {
				ratio = fmt.Sprintf("%.2f×", r.Lat.P99/o.Lat.P99)
			}
			fmt.Fprintf(w, "| %s | 1→%d | %d | %.0f | %.0f | %.0f | %.0f | %.2f | %s | %s | %s |\n", r.System, r.Receivers, r.Rate, r.Lat.P50, r.Lat.P99, r.Lat.P999, r.Lat.Max, r.LossPct, ratio, r.CPU.cells(), attempts(r))
		}
	}
	printGoals(w, results, ref)
}

func rate(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

// printGoals marks the goals met or not met when the results hold
// the reference and NATS (and Redis for the latency goal).
func printGoals(w io.Writer, results []Result, ref string) {
	get := func(sys string, mode Mode, n, key, rate int) (Result, bool) {
		for _, r := range results {
			if r.System == sys && r.Mode == mode && r.Receivers == n && r.KeySize == key && r.Rate == rate && r.Err == "" {
				return r, true
			}
		}
		return Result{}, false
	}
	mark := func(ok bool) string {
		if ok {
			return "**met**"
		}
		return "**not met**"
	}
	var lines []string
	if wm, ok := get(ref, Throughput, 1, 16, 0); ok {
		if n, ok := get("nats", Throughput, 1, 16, 0); ok {
			x := wm.MinRate / n.MinRate
			lines = append(lines, fmt.Sprintf("| 1→1 delivered ≥ 4× NATS (16 B) | %.2f× (%s vs %s) | %s |", x, rate(wm.MinRate), rate(n.MinRate), mark(x >= 4)))
		}
	}
	if wm, ok := get(ref, Throughput, 3, 16, 0); ok {
		if n, ok := get("nats", Throughput, 3, 16, 0); ok {
			x := wm.MinRate / n.MinRate
			lines = append(lines, fmt.Sprintf("| 1→3 per receiver ≥ 3× NATS per subscriber (16 B) | %.2f× (%s vs %s) | %s |", x, rate(wm.MinRate), rate(n.MinRate), mark(x >= 3)))
		}
	}
	if wm, ok := get(ref, Latency, 1, 16, 50000); ok {
		if n, ok := get("nats", Latency, 1, 16, 50000); ok {
			lines = append(lines, fmt.Sprintf("| 50k/s p99 ≤ ⅓ NATS p99 | %.0f µs vs %.0f µs (limit %.0f) | %s |", wm.Lat.P99, n.Lat.P99, n.Lat.P99/3, mark(wm.Lat.P99 <= n.Lat.P99/3)))
		}
		if rd, ok := get("redis", Latency, 1, 16, 50000); ok {
			lines = append(lines, fmt.Sprintf("| 50k/s p99 < Redis p99 | %.0f µs vs %.0f µs | %s |", wm.Lat.P99, rd.Lat.P99, mark(wm.Lat.P99 < rd.Lat.P99)))
		}
	}
	if len(lines) == 0 {
		return
	}
	fmt.Fprintf(w, "\n### Goals (%s against the brokers, this run)\n\n| goal | measured | |\n|---|---|---|\n", ref)
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
}
