package kernels

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestPackWinogradPar checks that packing split over workers, and repacking
// into the same memory, gives exactly the serial PackWinograd.
func TestPackWinogradPar(t *testing.T) {
	rng := rand.New(rand.NewPCG(61, 62))
	for _, s := range []ConvShape{sq3(3, 8, 8, 5, 1), sq3(16, 7, 7, 33, 1), sq3(17, 9, 9, 8, 0)} {
		for _, m := range []int{2, 4} {
			var ww *WinogradWeights
			for range 2 {
				w := randSlice(rng, s.OutC*s.K())
				want := PackWinograd(w, s, m)
				ww = PackWinogradPar(ww, w, s, m, goPar(3))
				for x := range want.u {
					if got := ww.u[x].data; !slices.Equal(got, want.u[x].data) {
						t.Fatalf("%+v F%d ξ=%d: packed data differs from PackWinograd", s, m, x)
					}
				}
			}
		}
	}
}

// TestPackWinogradCPar repacks channel-vectorised weights in place (split
// over workers) and checks them against PackWinogradC, and that a repack
// allocates nothing.
func TestPackWinogradCPar(t *testing.T) {
	forEachISA(t, testPackWinogradCPar)
}

func testPackWinogradCPar(t *testing.T) {
	if !WinogradCOK(sq3(1, 3, 3, 16, 1)) {
		t.Skipf("%s has no channel-vectorised Winograd kernels", ISA())
	}
	rng := rand.New(rand.NewPCG(63, 64))
	for _, s := range []ConvShape{sq3(3, 8, 8, 5, 1), sq3(16, 7, 7, 33, 1), sq3(17, 9, 9, 64, 0)} {
		for _, m := range []int{2, 4} {
			var ww *WinogradWeights
			for range 2 {
				w := randSlice(rng, s.OutC*s.K())
				want := PackWinogradC(w, s, m)
				ww = PackWinogradCPar(ww, w, s, m, goPar(3))
				if !slices.Equal(ww.tt, want.tt) {
					t.Fatalf("%+v F%d: packed data differs from PackWinogradC", s, m)
				}
			}
			w := randSlice(rng, s.OutC*s.K())
			if a := testing.AllocsPerRun(5, func() { ww = PackWinogradCPar(ww, w, s, m, nil) }); a != 0 {
				t.Errorf("%+v F%d: repacking allocates %v times", s, m, a)
			}
		}
	}
}
