package bridge

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// versionDB is the shared source of truth: a version per key, and when
// each version was superseded.
type versionDB struct {
	mu         sync.Mutex
	ver        map[string]int
	superseded map[string][]time.Time // [v] = when version v stopped being current
}

func newVersionDB() *versionDB {
	return &versionDB{ver: map[string]int{}, superseded: map[string][]time.Time{}}
}

func (d *versionDB) bump(k string) {
	d.mu.Lock()
	d.superseded[k] = append(d.superseded[k], time.Now())
	d.ver[k]++
	d.mu.Unlock()
}

func (d *versionDB) read(k string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ver[k]
}

// staleBy returns how long before at version v of k had been superseded
// (0 when it was still current, or superseded after at).
func (d *versionDB) staleBy(k string, v int, at time.Time) time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	if s := d.superseded[k]; v < len(s) && s[v].Before(at) {
		return at.Sub(s[v])
	}
	return 0
}

// The stale-read oracle across meshes: writers in mesh A update the
// database and then delete through A's cache; readers in mesh B read
// through B's cache. Every read is checked against the database's
// history: a read that started more than the bound after its version was
// superseded is stale. The run spans a nats-server kill and restart.
//
// The bound is 2 × StreamTimeout (2 s here): invalidations cross in
// about a millisecond, and while the link is down the importing bridge
// flushes its mesh every StreamTimeout (its caches then only pass loads
// through), so no value outlives its supersession by more than
// StreamTimeout plus a flush's trip through the mesh.
func TestStaleReadOracleAcrossMeshes(t *testing.T) {
	t.Parallel() // condition-based, with margins for a loaded machine
	ns := startNATS(t, false)
	a := newTestMesh(t, ns, "A", 1, nil)
	b := newTestMesh(t, ns, "B", 1, nil)
	linked(t, a, b)
	bound := 2 * b.bridges[0].cfg.StreamTimeout
	db := newVersionDB()
	keys := make([]string, 32)
	for i := range keys {
		keys[i] = fmt.Sprintf("item:%d", i)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var writes, reads, stale atomic.Int64
	var worstMu sync.Mutex
	var worst time.Duration
	wg.Add(1)
	go func() { // the writer, in A
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			k := keys[i%len(keys)]
			db.bump(k)
			if err := a.cache.Delete(k); err != nil {
				t.Error(err)
				return
			}
			writes.Add(1)
			time.Sleep(500 * time.Microsecond) // write pacing, not synchronisation
		}
	}()
	for r := range 2 { // readers, in B
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(r), 7))
			for ctx.Err() == nil {
				k := keys[rng.IntN(len(keys))]
				start := time.Now()
				v, err := b.cache.GetOrLoad(ctx, k, func(context.Context) (string, error) {
					return fmt.Sprint(db.read(k)), nil
				})
				if err != nil {
					return // cancelled
				}
				time.Sleep(50 * time.Microsecond) // read pacing: leave the writer some CPU
				var ver int
				fmt.Sscan(v, &ver)
				reads.Add(1)
				if by := db.staleBy(k, ver, start); by > 0 {
					worstMu.Lock()
					worst = max(worst, by)
					worstMu.Unlock()
					if by > bound {
						stale.Add(1)
					}
				}
			}
		}()
	}
	progress := func(what string) {
		w, r := writes.Load(), reads.Load()
		waitFor(t, 10*time.Second, what, func() bool { return writes.Load() > w+300 && reads.Load() > r+3000 })
	}
	progress("steady-state writes and reads")
	ns.stop()
	progress("writes and reads through the outage")
	waitFor(t, 10*time.Second, "flushes while cut off", func() bool {
		return b.bridges[0].Stats().Flushes[FlushDisconnected] >= 2
	})
	ns.start()
	waitFor(t, 10*time.Second, "reconnected", func() bool {
		return b.bridges[0].Connected() && a.bridges[0].Connected()
	})
	progress("writes and reads after the restart")
	cancel()
	wg.Wait()
	t.Logf("writes %d, reads %d, stale beyond %v: %d, oldest version served %v after supersession, B flushes %d",
		writes.Load(), reads.Load(), bound, stale.Load(), worst, b.flushes())
	if stale.Load() != 0 {
		t.Fatalf("%d stale reads beyond %v (worst %v)", stale.Load(), bound, worst)
	}
	if b.log.distinct() == 0 {
		t.Fatal("no invalidation crossed: the oracle checked nothing")
	}
}
