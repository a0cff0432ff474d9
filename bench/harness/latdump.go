package harness

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
)

// Diagnosing a latency tail: with MESHBENCH_LATDUMP=dir a Latency-mode
// receiver writes every unique arrival as "send_ns latency_ns" lines to
// dir/recv<idx>.lat, and every child writes its runtime's scheduling
// latency and GC pause histograms and GC count to dir/<role><idx>.metrics
// when it ends, with an allocation profile of every object
// (dir/<role><idx>.allocs.pprof, MemProfileRate 1). Off by default: the tally then keeps no send times.
const envLatDump = "MESHBENCH_LATDUMP"

// latDumpDir returns the dump directory, or "" when dumping is off.
func latDumpDir() string { return os.Getenv(envLatDump) }

// writeLatDump writes sent[i], lat[i] pairs to dir/recv<idx>.lat.
func writeLatDump(dir string, idx int, sent, lat []int64) error {
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("recv%d.lat", idx)))
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	for i := range min(len(sent), len(lat)) {
		fmt.Fprintf(w, "%d %d\n", sent[i], lat[i])
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// writeRuntimeMetrics writes the runtime histograms that bear on tail
// latency to dir/<role><idx>.metrics: bucket upper bounds in µs and counts,
// non-empty buckets only.
func writeRuntimeMetrics(dir, role string, idx int) error {
	names := []string{"/sched/latencies:seconds", "/gc/pauses:seconds", "/gc/cycles/total:gc-cycles", "/gc/heap/allocs:objects"}
	s := make([]metrics.Sample, len(names))
	for i, n := range names {
		s[i].Name = n
	}
	metrics.Read(s)
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%s%d.metrics", role, idx)))
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	for _, x := range s {
		switch x.Value.Kind() {
		case metrics.KindUint64:
			fmt.Fprintf(w, "%s %d\n", x.Name, x.Value.Uint64())
		case metrics.KindFloat64Histogram:
			h := x.Value.Float64Histogram()
			fmt.Fprintf(w, "%s\n", x.Name)
			for i, c := range h.Counts {
				if c > 0 {
					fmt.Fprintf(w, "  <=%.1fus %d\n", h.Buckets[i+1]*1e6, c)
				}
			}
		}
	}
	writeSchedstat(w)
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// writeSchedstat sums the kernel's per-thread schedstat of this process:
// time on a CPU, time runnable but waiting for one (run-queue delay, the
// part of a tail other processes cause), and timeslices.
func writeSchedstat(w io.Writer) {
	tasks, _ := filepath.Glob("/proc/self/task/*/schedstat")
	var run, wait, slices uint64
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		var a, c, d uint64
		if _, err := fmt.Sscan(string(b), &a, &c, &d); err == nil {
			run, wait, slices = run+a, wait+c, slices+d
		}
	}
	fmt.Fprintf(w, "schedstat threads %d oncpu_ms %.1f runq_wait_ms %.1f timeslices %d\n", len(tasks), float64(run)/1e6, float64(wait)/1e6, slices)
}

// startAllocProfile records every allocation from now on.
func startAllocProfile() { runtime.MemProfileRate = 1 }

// writeAllocProfile writes the allocation profile to dir/<role><idx>.allocs.pprof.
func writeAllocProfile(dir, role string, idx int) error {
	runtime.GC() // the profile shows allocations up to the last completed cycle
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%s%d.allocs.pprof", role, idx)))
	if err != nil {
		return err
	}
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// writeStatsLine writes a system's own counters, when it has any, to
// dir/<role><idx>.stats.
func writeStatsLine(dir, role string, idx int, v any) {
	if s, ok := v.(interface{ StatsLine() string }); ok {
		_ = os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s%d.stats", role, idx)), []byte(s.StatsLine()+"\n"), 0o644)
	}
}
