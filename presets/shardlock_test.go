package presets

import (
	"sync"
	"testing"
)

// Readers never see a writer's half-done update, and no update is lost:
// the race detector checks the memory model, the counters check the
// exclusion.
func TestShardLockExcludes(t *testing.T) {
	var l shardLock
	var a, b int // written together under the write lock
	const writers, readers, rounds = 2, 4, 2000
	var wg sync.WaitGroup
	var torn sync.Map
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				l.Lock()
				a++
				b++
				l.Unlock()
			}
		}()
	}
	for r := 0; r < readers; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				st := l.RLock()
				if a != b {
					torn.Store(a, b)
				}
				st.RUnlock()
				st.hits.Add(1)
			}
		}()
	}
	wg.Wait()
	torn.Range(func(k, v any) bool {
		t.Errorf("a reader saw a = %v, b = %v", k, v)
		return false
	})
	if a != writers*rounds || b != a {
		t.Fatalf("a = %d, b = %d, want %d: a writer's update was lost", a, b, writers*rounds)
	}
	if hits, _ := l.counts(); hits != readers*rounds {
		t.Fatalf("stripes counted %d hits, want %d", hits, readers*rounds)
	}
	for i := range l.stripes {
		if n := l.stripes[i].readers.Load(); n != 0 {
			t.Fatalf("stripe %d still counts %d readers", i, n)
		}
	}
}

func TestShardLockReadDoesNotAllocate(t *testing.T) {
	var l shardLock
	allocs := testing.AllocsPerRun(1000, func() {
		st := l.RLock()
		st.RUnlock()
	})
	if allocs != 0 {
		t.Fatalf("RLock allocates %.1f times", allocs)
	}
}
