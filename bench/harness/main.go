package harness

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// Main is the whole program of a harness binary: as a child (-role set)
// it plays one role of one run; as the parent it runs every requested
// (system × workload) and prints the markdown tables to stdout. It returns
// the process exit code.
func Main(systems []System, args []string, stdout io.Writer) int {
	fs := flag.NewFlagSet("meshbench", flag.ContinueOnError)
	role := fs.String("role", "", "internal: the role of a child process (recv, pub, helper)")
	idx := fs.Int("idx", 0, "internal: the receiver index of a child process")
	var names []string
	for _, s := range systems {
		names = append(names, s.Name)
	}
	sysList := fs.String("systems", strings.Join(names, ","), "systems to run, comma-separated")
	modes := fs.String("modes", "throughput,latency", "workloads: throughput, latency")
	recvs := fs.String("receivers", "1,3", "receiver counts for throughput")
	keys := fs.String("keys", "16,64", "key sizes in bytes for throughput (>= 16)")
	rates := fs.String("rates", "1000,50000", "publish rates per second for latency")
	latRecvs := fs.String("latency-receivers", "1", "receiver counts for latency")
	dur := fs.Duration("duration", 2*time.Second, "publishing time per run")
	retries := fs.Int("retries", 2, "reruns of a run disturbed by outside load")
	maxOther := fs.Float64("max-other", 0.25, "outside CPU (cores) above which a run is disturbed")
	ref := fs.String("ref", "", "system the ratios are taken against (default: the first listed)")
	jsonOut := fs.String("json", "", "also write every result as JSON to this file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *role != "" {
		if err := runChild(*role, *idx, systems); err != nil {
			fmt.Fprintln(os.Stderr, "meshbench:", err)
			return 1
		}
		return 0
	}
	var chosen []System
	for _, n := range strings.Split(*sysList, ",") {
		s, ok := findSystem(systems, strings.TrimSpace(n))
		if !ok {
			fmt.Fprintf(os.Stderr, "meshbench: unknown system %q (have %s)\n", n, strings.Join(names, ", "))
			return 2
		}
		chosen = append(chosen, s)
	}
	if *ref == "" {
		*ref = chosen[0].Name
	}
	ints := func(s string) []int {
		var out []int
		for _, f := range strings.Split(s, ",") {
			if v, err := strconv.Atoi(strings.TrimSpace(f)); err == nil {
				out = append(out, v)
			}
		}
		return out
	}
	lim := Limits{MaxOther: *maxOther, Retries: *retries}
	var results []Result
	for _, mode := range strings.Split(*modes, ",") {
		var specs []Spec
		switch Mode(mode) {
		case Throughput:
			for _, n := range ints(*recvs) {
				for _, k := range ints(*keys) {
					specs = append(specs, Spec{Mode: Throughput, Receivers: n, KeySize: max(k, MinKeySize), Duration: *dur})
				}
			}
		case Latency:
			for _, n := range ints(*latRecvs) {
				for _, r := range ints(*rates) {
					specs = append(specs, Spec{Mode: Latency, Receivers: n, KeySize: MinKeySize, Duration: *dur, Rate: r})
				}
			}
		default:
			fmt.Fprintf(os.Stderr, "meshbench: unknown mode %q\n", mode)
			return 2
		}
		for _, sp := range specs {
			for _, s := range chosen {
				sp.System = s.Name
				fmt.Fprintf(os.Stderr, "meshbench: %s %s 1→%d key%d rate %d ...\n", s.Name, sp.Mode, sp.Receivers, sp.KeySize, sp.Rate)
				r := Run(s, sp, lim)
				fmt.Fprintf(os.Stderr, "meshbench:   %s\n", r.line())
				results = append(results, r)
			}
		}
	}
	PrintTables(stdout, results, *ref)
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(results, "", "  ")
		if err := os.WriteFile(*jsonOut, b, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "meshbench:", err)
			return 1
		}
	}
	return 0
}
