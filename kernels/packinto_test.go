package kernels

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// PackAInto packs exactly as PackA and reuses its memory without allocating.
func TestPackAInto(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	a := make([]float32, 37*333)
	for i := range a {
		a[i] = float32(rng.NormFloat64())
	}
	var p *PackedA
	for _, mk := range [][2]int{{37, 333}, {16, 100}, {37, 333}} {
		m, k := mk[0], mk[1]
		p = PackAInto(p, a, m, k, k)
		want := PackA(a, m, k, k)
		if p.M != m || p.K != k || !slices.Equal(p.data, want.data) {
			t.Fatalf("PackAInto %dx%d differs from PackA", m, k)
		}
	}
	if n := testing.AllocsPerRun(10, func() { p = PackAInto(p, a, 16, 100, 100) }); n != 0 {
		t.Errorf("allocations per repack got %v; want 0", n)
	}
}
