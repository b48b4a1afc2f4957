package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// refConv is the naive float64 conv of one CHW image followed by ep.
func refConv(src, w []float32, s ConvShape, old []float32, ep *Epilogue) []float64 {
	oh, ow := s.OutH(), s.OutW()
	out := make([]float64, s.OutC*oh*ow)
	for o := 0; o < s.OutC; o++ {
		for y := 0; y < oh; y++ {
			for x := 0; x < ow; x++ {
				var sum float64
				for c := 0; c < s.C; c++ {
					for ky := 0; ky < s.KH; ky++ {
						iy := y*s.StrideH + ky - s.PadH
						if iy < 0 || iy >= s.H {
							continue
						}
						for kx := 0; kx < s.KW; kx++ {
							ix := x*s.StrideW + kx - s.PadW
							if ix < 0 || ix >= s.W {
								continue
							}
							sum += float64(w[((o*s.C+c)*s.KH+ky)*s.KW+kx]) * float64(src[(c*s.H+iy)*s.W+ix])
						}
					}
				}
				i := (o*oh+y)*ow + x
				out[i] = refEpilogue(sum, float64(old[i]), o, ep)
			}
		}
	}
	return out
}

func convCases(rng *rand.Rand) []ConvShape {
	var cs []ConvShape
	sq := func(c, h, w, oc, k, st, p int) ConvShape {
		return ConvShape{C: c, H: h, W: w, OutC: oc, KH: k, KW: k, StrideH: st, StrideW: st, PadH: p, PadW: p}
	}
	for i := 1; i <= 67; i++ {
		st := 1 + i%2
		cs = append(cs, sq(i, 7, 6, 9, 3, st, 1), sq(5, 6, 7, i, 3, st, 1))
	}
	for _, st := range []int{1, 2} {
		for _, hw := range []int{1, 2, 5, 8, 9, 16, 17} {
			cs = append(cs, sq(3, hw, hw, 7, 3, st, 1), sq(4, hw, hw+3, 5, 1, st, 0))
		}
		cs = append(cs, sq(6, 11, 10, 13, 5, st, 2), sq(3, 9, 9, 4, 3, st, 0), sq(8, 32, 32, 16, 3, st, 1))
	}
	cs = append(cs, ConvShape{C: 3, H: 10, W: 7, OutC: 6, KH: 3, KW: 1, StrideH: 2, StrideW: 1, PadH: 1, PadW: 0})
	cs = append(cs, sq(3, 23, 23, 8, 7, 2, 3)) // ImageNet-like stem
	// Pitched convs (rows not a multiple of the vector width), MNIST sizes
	// and odd ones, multi-panel M and K beyond one block.
	cs = append(cs, sq(16, 28, 28, 16, 3, 1, 1), sq(5, 14, 14, 33, 3, 1, 1), sq(9, 7, 7, 17, 3, 1, 1),
		sq(16, 28, 28, 32, 3, 2, 1), sq(3, 13, 12, 5, 3, 1, 1), sq(2, 6, 22, 3, 5, 1, 2), sq(50, 7, 7, 20, 3, 1, 1),
		sq(4, 15, 13, 6, 3, 2, 1), sq(3, 9, 11, 4, 3, 3, 1))
	for range 15 {
		cs = append(cs, sq(1+rng.IntN(40), 3+rng.IntN(14), 3+rng.IntN(14), 1+rng.IntN(40), 1+2*rng.IntN(2), 1+rng.IntN(2), rng.IntN(2)))
	}
	return cs
}

// gatherResidual gives ep a random residual of its own row count with
// ResidualRows (some rows without) and ResidualScale for m rows of hw
// values, and returns the residual each row gets.
func gatherResidual(rng *rand.Rand, ep *Epilogue, m, hw int) []float32 {
	r := 1 + rng.IntN(m+3)
	ep.Residual = randSlice(rng, r*hw)
	ep.ResidualRows, ep.ResidualScale = make([]int32, m), randSlice(rng, m)
	eff := make([]float32, m*hw)
	for o := range m {
		ep.ResidualRows[o] = int32(rng.IntN(r+1) - 1)
		if ri := ep.ResidualRows[o]; ri >= 0 {
			for p := range hw {
				eff[o*hw+p] = ep.ResidualScale[o] * ep.Residual[int(ri)*hw+p]
			}
		}
	}
	return eff
}

// convTol bounds the conv rel error (max|y−r|/max|r|): float32 sums over K up
// to ~1000 taps with cancellation reach ~1.2e-5 on these random cases; the
// project-wide SIMD tolerance is 1e-4.
const convTol = 3e-5

func TestConv2D(t *testing.T) {
	t.Run("direct", testConv2D)
	pitchEnabled = false
	t.Run("unpitched", testConv2D)
	pitchEnabled = true
	directEnabled = false
	defer func() { directEnabled = true }()
	t.Run("packed", testConv2D)
}

// TestConvLayout checks which convs are pitched and that a pitched conv's
// GEMM covers whole strips inside its input copy.
func TestConvLayout(t *testing.T) {
	forEachISA(t, func(t *testing.T) {
		ks := active
		for _, tt := range []struct {
			s    ConvShape
			want bool // pitched (on paths with indirect kernels)
		}{
			{ConvShape{C: 16, H: 28, W: 28, OutC: 16, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}, true},
			{ConvShape{C: 16, H: 7, W: 7, OutC: 16, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}, true},
			{ConvShape{C: 16, H: 28, W: 28, OutC: 16, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1}, true},
			{ConvShape{C: 16, H: 32, W: 32, OutC: 16, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}, false},
			{ConvShape{C: 16, H: 9, W: 9, OutC: 16, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}, false},
			{ConvShape{C: 16, H: 28, W: 28, OutC: 16, KH: 3, KW: 3, StrideH: 1, StrideW: 1}, false},
			{ConvShape{C: 16, H: 28, W: 28, OutC: 16, KH: 1, KW: 1, StrideH: 2, StrideW: 2}, false},
		} {
			l := layoutOf(tt.s, ks)
			want := tt.want && ks.ind != nil
			if got := l.pitched(tt.s); got != want {
				t.Errorf("%+v: pitched %v; want %v", tt.s, got, want)
			}
			if !l.pitched(tt.s) {
				continue
			}
			if l.n%ks.nr != 0 || l.n < tt.s.OutH()*l.pitch {
				t.Errorf("%+v: %d columns; want a multiple of %d ≥ %d", tt.s, l.n, ks.nr, tt.s.OutH()*l.pitch)
			}
			rows := (l.n+l.pitch-1)/l.pitch - 1
			if need := rows*tt.s.StrideH + tt.s.KH; l.hp < need {
				t.Errorf("%+v: %d plane rows; want ≥ %d", tt.s, l.hp, need)
			}
		}
	})
}

func testConv2D(t *testing.T) {
	forEachISA(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(11, 12))
		ws := NewWorkspace(1, nil)
		wsPar := NewWorkspace(2, serialPar(2))
		for ci, s := range convCases(rng) {
			name := fmt.Sprintf("%+v", s)
			src := randSlice(rng, s.C*s.H*s.W+ci%4)[ci%4:] // unaligned input too
			w := randSlice(rng, s.OutC*s.K())
			ep := randEpilogue(rng, ci, s.OutC)
			n := s.OutC * s.OutH() * s.OutW()
			off := ci % 3
			dst, buf := guarded(n, off)
			old := randSlice(rng, n)
			copy(dst, old)
			pw := PackConv(w, s)
			wsx := ws
			if ci%2 == 1 {
				wsx = wsPar
			}
			refEp, refOld := ep, old
			if ep != nil && ci%3 == 0 {
				// A residual is the same as accumulating onto old (+) it.
				eff := randSlice(rng, n)
				ep.Residual = eff
				if ci%2 == 0 {
					eff = gatherResidual(rng, ep, s.OutC, s.OutH()*s.OutW())
				}
				refEp, refOld = residualRef(ep, eff, old)
			}
			wsx.Conv2D(dst, src, pw, s, ep)
			checkGuards(t, buf, off, n, func(int) bool { return true })
			if e := relErr(dst, refConv(src, w, s, refOld, refEp)); e > convTol {
				t.Fatalf("%s: rel err %.3g; want ≤ %g", name, e, convTol)
			}
		}
	})
}

func TestConv2DAllocs(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	s := ConvShape{C: 16, H: 16, W: 16, OutC: 16, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}
	src := randSlice(rng, s.C*s.H*s.W)
	pw := PackConv(randSlice(rng, s.OutC*s.K()), s)
	dst := make([]float32, s.OutC*s.OutH()*s.OutW())
	ws := NewWorkspace(2, serialPar(2))
	ws.Reserve(s)
	ep := &Epilogue{Bias: randSlice(rng, s.OutC), Act: ActReLU}
	if a := testing.AllocsPerRun(5, func() { ws.Conv2D(dst, src, pw, s, ep) }); a != 0 {
		t.Fatalf("Conv2D allocates %v times per call; want 0", a)
	}
}

// TestConv2DConcurrentWorkers drives Conv2D and Depthwise3x3 with real goroutines.
func TestConv2DConcurrentWorkers(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	ws := NewWorkspace(3, goPar(3))
	for _, s := range []ConvShape{
		{C: 19, H: 16, W: 16, OutC: 37, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1},
		{C: 8, H: 8, W: 8, OutC: 67, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1},
		{C: 16, H: 17, W: 17, OutC: 32, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1},
	} {
		src := randSlice(rng, s.C*s.H*s.W)
		w := randSlice(rng, s.OutC*s.K())
		ep := &Epilogue{Bias: randSlice(rng, s.OutC), Act: ActReLU}
		dst := make([]float32, s.OutC*s.OutH()*s.OutW())
		ws.Conv2D(dst, src, PackConv(w, s), s, ep)
		if e := relErr(dst, refConv(src, w, s, dst, ep)); e > 1e-5 {
			t.Fatalf("%+v: rel err %.3g; want ≤ 1e-5", s, e)
		}
	}
}

// A worker's padded input copy keeps its zero border from one call to the
// next of the same shape (only the interior is rewritten); another shape in
// between, or a strided 1×1 conv reusing the scratch, must not leak into it.
func TestConv2DReusedPadding(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 18))
	sq := func(c, h, w, oc, k, st, p int) ConvShape {
		return ConvShape{C: c, H: h, W: w, OutC: oc, KH: k, KW: k, StrideH: st, StrideW: st, PadH: p, PadW: p}
	}
	a := sq(5, 9, 11, 7, 3, 1, 1)
	d := sq(12, 16, 16, 3, 1, 2, 0) // strided 1×1: subsamples into the same scratch
	shapes := []ConvShape{a, sq(6, 8, 9, 5, 3, 2, 1), sq(3, 7, 7, 4, 5, 3, 2), sq(4, 10, 10, 6, 1, 2, 0)}
	forEachISA(t, func(t *testing.T) {
		for _, ws := range []*Workspace{NewWorkspace(1, nil), NewWorkspace(2, serialPar(2))} {
			for _, s := range shapes {
				w := randSlice(rng, s.OutC*s.K())
				pw := PackConv(w, s)
				// s, then a (dirtying the scratch with a's interior), then s
				// twice, then d (overwriting the scratch), then s.
				for i, cur := range []ConvShape{s, a, s, s, d, s} {
					wt, cw := pw, w
					if cur != s {
						cw = randSlice(rng, cur.OutC*cur.K())
						wt = PackConv(cw, cur)
					}
					src := randSlice(rng, cur.C*cur.H*cur.W)
					for j := range src {
						src[j] += 10 // large values: a stale border shows
					}
					dst := make([]float32, cur.OutC*cur.OutH()*cur.OutW())
					ws.Conv2D(dst, src, wt, cur, nil)
					if e := relErr(dst, refConv(src, cw, cur, dst, nil)); e > convTol {
						t.Fatalf("%+v call %d (%d workers): rel err %.3g", cur, i, ws.Workers(), e)
					}
				}
			}
		}
	})
}

// residualRef returns the epilogue and destination that the reference
// computes a residual epilogue ep with: a residual (its effective values eff,
// after gathering and scaling) is the same as accumulating onto old (when ep
// accumulates) plus it.
func residualRef(ep *Epilogue, eff, old []float32) (*Epilogue, []float32) {
	refEp := &Epilogue{Bias: ep.Bias, Act: ep.Act, Slope: ep.Slope, Min: ep.Min, Max: ep.Max, Accumulate: true}
	refOld := make([]float32, len(eff))
	for i, r := range eff {
		refOld[i] = r
		if ep.Accumulate {
			refOld[i] += old[i]
		}
	}
	return refEp, refOld
}
