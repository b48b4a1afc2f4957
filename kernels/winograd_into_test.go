package kernels

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestPackWinogradInto checks that repacking new weights into the memory of
// earlier ones gives exactly what PackWinograd gives, allocates nothing, and
// that a different shape or tile gets fresh memory.
func TestPackWinogradInto(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, m := range []int{2, 4} {
		s := sq3(5, 9, 9, 7, 1)
		w1, w2 := randSlice(rng, s.OutC*s.K()), randSlice(rng, s.OutC*s.K())
		ww := PackWinogradInto(nil, w1, s, m)
		ww = PackWinogradInto(ww, w2, s, m)
		want := PackWinograd(w2, s, m)
		for x := range want.u {
			if !slices.Equal(ww.u[x].data, want.u[x].data) || ww.u[x].M != want.u[x].M || ww.u[x].K != want.u[x].K {
				t.Fatalf("m=%d ξ=%d: repacked weights differ from PackWinograd's", m, x)
			}
		}
		if got := testing.AllocsPerRun(3, func() { PackWinogradInto(ww, w1, s, m) }); got != 0 {
			t.Errorf("m=%d: got %.0f allocations per repack; want 0", m, got)
		}
		s2 := sq3(5, 9, 9, 8, 1)
		w3 := randSlice(rng, s2.OutC*s2.K())
		if ww2 := PackWinogradInto(ww, w3, s2, m); ww2 == ww || ww2.s != s2 {
			t.Errorf("m=%d: a new shape reused the old weights' memory", m)
		}
	}
}
