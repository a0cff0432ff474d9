// Command hitratio prints the hit ratio (%) of each cache on each trace of
// cachesim.Standard, as a Markdown table. A cache seen holding more entries
// than its capacity is marked with the most it held.
//
//	go run ./cmd/hitratio -capacity 10000,100000
package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/warpmesh/warpmesh/bench/cachesim"
)

func main() {
	caps := flag.String("capacity", "10000,100000", "cache capacities (entries), comma-separated")
	requests := flag.Int("requests", cachesim.DefaultRequests, "requests per trace")
	keySpace := flag.Int("keys", cachesim.DefaultKeySpace, "key space of the Zipf traces")
	only := flag.String("caches", "", "comma-separated cache names (default: all)")
	flag.Parse()
	if err := run(*caps, *requests, *keySpace, *only); err != nil {
		fmt.Fprintln(os.Stderr, "hitratio:", err)
		os.Exit(1)
	}
}

func run(caps string, requests, keySpace int, only string) error {
	var makers []cachesim.Maker
	for _, m := range cachesim.Makers {
		if only == "" || strings.Contains(","+only+",", ","+m.Name+",") {
			makers = append(makers, m)
		}
	}
	keys := cachesim.Keys(keySpace)
	fmt.Print("| capacity | trace |")
	for _, m := range makers {
		fmt.Printf(" %s |", m.Name)
	}
	fmt.Print("\n|---|---|")
	for range makers {
		fmt.Print("---|")
	}
	fmt.Println()
	for _, cs := range strings.Split(caps, ",") {
		capacity, err := strconv.Atoi(cs)
		if err != nil || capacity < 1 {
			return fmt.Errorf("bad capacity %q", cs)
		}
		if capacity*2 > keySpace {
			return fmt.Errorf("capacity %d needs a key space of at least %d", capacity, capacity*2)
		}
		for _, t := range cachesim.Standard(capacity, requests, keySpace) {
			fmt.Printf("| %d | %s |", capacity, t.Name)
			for _, m := range makers {
				c, err := m.New(capacity)
				if err != nil {
					return fmt.Errorf("%s: %w", m.Name, err)
				}
				r := cachesim.Run(c, t, keys)
				c.Close()
				mark := ""
				if r.MaxLen > capacity {
					mark = fmt.Sprintf(" (held %d)", r.MaxLen)
				}
				fmt.Printf(" %.1f%s |", 100*r.HitRatio, mark)
			}
			fmt.Println()
		}
	}
	return nil
}
