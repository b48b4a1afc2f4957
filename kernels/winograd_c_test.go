package kernels

import (
	"math/rand/v2"
	"testing"
)

// testWinoC makes checkWinograd pack with PackWinogradC where it can.
var testWinoC bool

// TestWinogradC checks the channel-vectorised path against the reference
// conv: maps from 1×1 to 33×33 with padding 0 to 2 (edge tiles cut in rows
// and columns), 1 to 67 input channels (a partial last block), 16 to 64
// output channels (one and two vectors per GEMM block) and 1 to 45 (a
// partial last block), every epilogue
// (gathered and scaled residuals, accumulation), batch 1 and 3, on one and
// two workers, and in several chunks of tile rows.
func TestWinogradC(t *testing.T) {
	if !WinogradCOK(sq3(1, 3, 3, 16, 1)) {
		t.Skipf("%s has no channel-vectorised Winograd kernels", ISA())
	}
	defer func(v bool) { testWinoC = v }(testWinoC)
	testWinoC = true
	rng := rand.New(rand.NewPCG(81, 82))
	one, two := NewWorkspace(1, nil), NewWorkspace(2, goPar(2))
	cases := []ConvShape{sq3(64, 7, 7, 64, 1), sq3(32, 14, 14, 32, 1), sq3(16, 28, 28, 16, 1),
		sq3(3, 1, 1, 16, 1), sq3(5, 9, 13, 48, 0), sq3(17, 33, 33, 16, 1), sq3(24, 8, 8, 32, 1),
		sq3(1, 5, 70, 16, 1), sq3(67, 6, 5, 32, 2), sq3(40, 150, 3, 16, 1),
		sq3(5, 9, 13, 9, 1), sq3(20, 7, 7, 45, 1), sq3(11, 14, 14, 23, 0), sq3(3, 4, 4, 1, 1)}
	for ci, s := range cases {
		for _, m := range []int{2, 4} {
			for v := range 9 {
				ws := one
				if (ci+v)%2 == 1 {
					ws = two
				}
				checkWinograd(t, rng, ws, s, m, 1+2*((ci+v+m)%2), ci+v)
			}
		}
	}
}
