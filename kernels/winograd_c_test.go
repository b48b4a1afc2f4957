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
	defer func(v bool) { testWinoC = v }(testWinoC)
	testWinoC = true
	forEachISA(t, testWinogradC)
}

func testWinogradC(t *testing.T) {
	if !WinogradCOK(sq3(1, 3, 3, 16, 1)) {
		t.Skipf("%s has no channel-vectorised Winograd kernels", ISA())
	}
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
				checkWinograd(t, rng, ws, s, m, 1+2*((ci+v/2)%2), ci+v)
			}
		}
	}
}

// TestWinogradCSplits checks that a call on 2 and 3 workers, split by tile
// rows or by output channels (fewer than two tile rows per worker: a 7×7
// map at batch 1), gives exactly what one worker computes.
func TestWinogradCSplits(t *testing.T) {
	forEachISA(t, func(t *testing.T) {
		if !WinogradCOK(sq3(1, 3, 3, 16, 1)) {
			t.Skipf("%s has no channel-vectorised Winograd kernels", ISA())
		}
		shapes := []ConvShape{sq3(64, 7, 7, 64, 1), sq3(32, 14, 14, 32, 1), sq3(16, 28, 28, 16, 1), sq3(40, 7, 7, 96, 1), sq3(9, 5, 11, 20, 0)}
		sameAsOneWorker(t, rand.New(rand.NewPCG(95, 96)), shapes, PackWinogradC)
	})
}

// TestTranspose16 checks both 16×16 transposes against their definitions
// on runs of pixels shorter than, equal to and past whole blocks, and that
// nothing outside the written elements changes.
func TestTranspose16(t *testing.T) {
	rng := rand.New(rand.NewPCG(91, 92))
	forEachISA(t, func(t *testing.T) {
		for _, n := range []int{1, 5, 15, 16, 17, 33, 49, 100} {
			ohw := n + rng.IntN(5)
			src := randSlice(rng, 16*ohw)
			band := randSlice(rng, n*16+7)
			old := append([]float32(nil), band...)
			Transpose16(band, src, ohw, n)
			for i, v := range band {
				want := old[i]
				if i < n*16 {
					want = src[(i%16)*ohw+i/16]
				}
				if v != want {
					t.Fatalf("Transpose16 n=%d: [%d] = %g; want %g", n, i, v, want)
				}
			}
			planes := randSlice(rng, 16*ohw)
			oldP := append([]float32(nil), planes...)
			Untranspose16(planes, ohw, band, n)
			for i, v := range planes {
				want := oldP[i]
				if i%ohw < n {
					want = band[(i%ohw)*16+i/ohw]
				}
				if v != want {
					t.Fatalf("Untranspose16 n=%d: [%d] = %g; want %g", n, i, v, want)
				}
			}
		}
	})
}

// TestToHWC fills bands from planes ohw apart with holes (RM's merged
// identity with pruned channels), from scattered planes, and from lanes
// past the end of the source, against the definition.
func TestToHWC(t *testing.T) {
	rng := rand.New(rand.NewPCG(93, 94))
	forEachISA(t, func(t *testing.T) {
		const ohw, n = 53, 49
		for trial := range 80 {
			L := 8 << (trial % 2) // HWC8 (AVX2) and HWC16 bands
			nplanes := 8 + rng.IntN(24)
			src := randSlice(rng, nplanes*ohw)
			planes := make([]int, L)
			base := rng.IntN(nplanes)
			for j := range planes {
				c := base + j
				switch {
				case trial%8 >= 6:
					c = rng.IntN(nplanes + 4) // scattered
				case rng.IntN(4) == 0:
					c = -1 // a hole
				}
				planes[j] = -1
				if c >= 0 && c < nplanes {
					planes[j] = c * ohw
				}
			}
			dst := randSlice(rng, n*L)
			toHWC(dst, src, planes, ohw, n)
			for p := range n {
				for j, pl := range planes {
					want := float32(0)
					if pl >= 0 {
						want = src[pl+p]
					}
					if got := dst[p*L+j]; got != want {
						t.Fatalf("trial %d planes %v: pixel %d lane %d = %g; want %g", trial, planes, p, j, got, want)
					}
				}
			}
		}
	})
}

// TestWinogradCOtherPath runs weights packed on one kernel path while
// another is active (the engine packs once; UseISA may change later): the
// call sizes its scratch for the weights' lanes.
func TestWinogradCOtherPath(t *testing.T) {
	if ISA() != "avx512" {
		t.Skip("needs the avx512 path to pack on")
	}
	defer func(old string) { UseISA(old) }(ISA())
	rng := rand.New(rand.NewPCG(97, 98))
	s := sq3(32, 14, 14, 48, 1)
	w := randSlice(rng, s.OutC*s.K())
	ww := PackWinogradC(w, s, 4) // 16 lanes
	src := randSlice(rng, s.C*s.H*s.W)
	dst := make([]float32, s.OutC*s.OutH()*s.OutW())
	if err := UseISA("avx2"); err != nil {
		t.Skip(err)
	}
	ws := NewWorkspace(2, goPar(2))
	ws.ReserveWinograd(s, 4, 1) // sized for the active 8-lane path
	ws.Winograd(dst, src, 1, ww, s, nil)
	if e := relErr(dst, refConv(src, w, s, make([]float32, len(dst)), nil)); !(e <= winoTol) {
		t.Fatalf("rel err %.3g; want ≤ %g", e, winoTol)
	}
}

// TestWinogradCAllocs checks that a channel-vectorised call allocates
// nothing once reserved, with a partial last block of output channels (the
// zero-padded epilogue copy) and a scaled residual, on two workers.
func TestWinogradCAllocs(t *testing.T) {
	if !WinogradCOK(sq3(1, 3, 3, 16, 1)) {
		t.Skipf("%s has no channel-vectorised Winograd kernels", ISA())
	}
	rng := rand.New(rand.NewPCG(99, 100))
	s := sq3(20, 14, 14, 23, 1)
	const n = 2
	osz := s.OutC * s.OutH() * s.OutW()
	src := randSlice(rng, n*s.C*s.H*s.W)
	dst := make([]float32, n*osz)
	ws := NewWorkspace(2, serialPar(2))
	for _, m := range []int{2, 4} {
		ww := PackWinogradC(randSlice(rng, s.OutC*s.K()), s, m)
		ws.ReserveWinograd(s, m, n)
		ep := &Epilogue{Bias: randSlice(rng, s.OutC), Act: ActReLU, Residual: randSlice(rng, n*osz), ResidualScale: randSlice(rng, s.OutC)}
		if a := testing.AllocsPerRun(5, func() { ws.Winograd(dst, src, n, ww, s, ep) }); a != 0 {
			t.Fatalf("F%dc: Winograd allocates %v times per call; want 0", m, a)
		}
	}
}
