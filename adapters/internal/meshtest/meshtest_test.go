package meshtest

import "testing"

func TestForceGapRaisesGap(t *testing.T) {
	m := New(t)
	m.ForceGap(t)
	if m.Gaps() == 0 {
		t.Fatal("no Gap")
	}
}
