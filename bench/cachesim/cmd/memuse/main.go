// Command memuse prints the heap each cache uses per entry when full: the
// keys are built beforehand and shared, so what is counted is the cache's
// own structure (index, entries, policy) holding a string key and an int.
//
//	go run ./cmd/memuse -entries 1000000
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"

	"github.com/warpmesh/warpmesh/bench/cachesim"
)

func heap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func main() {
	n := flag.Int("entries", 1_000_000, "capacity, and entries stored")
	flag.Parse()
	keys := cachesim.Keys(*n)
	fmt.Println("| cache | bytes per entry |")
	fmt.Println("|---|---|")
	for _, m := range cachesim.Makers {
		before := heap()
		c, err := m.New(*n)
		if err != nil {
			fmt.Fprintln(os.Stderr, "memuse:", err)
			os.Exit(1)
		}
		for i, k := range keys {
			c.Set(k, i)
		}
		if w, ok := c.(interface{ Wait() }); ok {
			w.Wait()
		}
		after := heap()
		held := c.Len()
		fmt.Printf("| %s | %.0f (holding %d) |\n", m.Name, float64(after-before)/float64(*n), held)
		runtime.KeepAlive(keys)
		c.Close()
	}
}
