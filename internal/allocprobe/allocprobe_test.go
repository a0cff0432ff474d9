package allocprobe

import "testing"

func TestHitRunsInstalledProbe(t *testing.T) {
	var got []Site
	restore := Set(func(s Site) { got = append(got, s) })
	Hit(SenderFrame)
	Hit(ReaderBatch)
	restore()
	Hit(SenderFrame) // removed: not recorded
	if len(got) != 2 || got[0] != SenderFrame || got[1] != ReaderBatch {
		t.Fatalf("probe saw %v", got)
	}
	if a := testing.AllocsPerRun(1000, func() { Hit(SenderFrame) }); a != 0 {
		t.Fatalf("Hit without a probe allocates %.1f", a)
	}
}

// BenchmarkHit is the cost production code pays per frame and per read
// batch (no probe installed).
func BenchmarkHit(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		Hit(SenderFrame)
	}
}
