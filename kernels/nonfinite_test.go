package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

var (
	nan  = float32(math.NaN())
	pinf = float32(math.Inf(1))
	ninf = float32(math.Inf(-1))
)

// checkNonFinite compares got with the float64 reference want: NaN where want
// is NaN, the same infinity where want is infinite, else within tol·(1+|want|).
// It also fails when the reference has no non-finite value (the test would
// then prove nothing).
func checkNonFinite(t *testing.T, name string, got []float32, want []float64, tol float64) {
	t.Helper()
	nonFinite, bad := 0, 0
	for i, w := range want {
		g := float64(got[i])
		ok := true
		switch {
		case math.IsNaN(w):
			nonFinite++
			ok = math.IsNaN(g)
		case math.IsInf(w, 0):
			nonFinite++
			ok = g == w
		default:
			ok = math.Abs(g-w) <= tol*(1+math.Abs(w))
		}
		if !ok {
			if bad < 5 {
				t.Errorf("%s: element %d: got %v; want %v", name, i, g, w)
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d elements differ", name, bad, len(want))
	}
	if nonFinite == 0 {
		t.Errorf("%s: the reference has no NaN or Inf; the test proves nothing", name)
	}
}

// nonFiniteEpilogues are every epilogue kind, with NaN and ±Inf in the bias.
func nonFiniteEpilogues(rng *rand.Rand, m int) map[string]*Epilogue {
	bias := randSlice(rng, m)
	for i, v := range []float32{nan, pinf, ninf} {
		if i+1 < m {
			bias[i+1] = v
		}
	}
	lo, hi := make([]float32, m), make([]float32, m)
	for i := range lo {
		lo[i], hi[i] = -float32(rng.Float64()), float32(rng.Float64())
	}
	lo[0] = ninf // an unbounded clamp, as RM's reserved channels have
	slope := randSlice(rng, m)
	return map[string]*Epilogue{
		"bias":       {Bias: bias},
		"relu":       {Bias: bias, Act: ActReLU},
		"relu6":      {Bias: bias, Act: ActReLU6},
		"prelu":      {Bias: bias, Act: ActPReLU, Slope: slope},
		"clamp":      {Bias: bias, Min: lo, Max: hi},
		"relu+clamp": {Bias: bias, Act: ActReLU, Min: lo, Max: hi},
		"acc+relu":   {Bias: bias, Act: ActReLU, Accumulate: true},
		"residual":   {Bias: bias, Act: ActReLU}, // Residual set by the caller
	}
}

// sprinkle puts NaN, +Inf and -Inf at a few spread positions of x.
func sprinkle(x []float32, seed int) {
	for i, v := range []float32{nan, pinf, ninf} {
		if j := (seed*7 + i*(len(x)/3+1)) % len(x); len(x) > 0 {
			x[j] = v
		}
	}
}

// TestNonFiniteGemm runs NaN and ±Inf through the GEMM (in B, the old C,
// the residual and the bias) with every epilogue on every kernel path:
// they must propagate as in the float64 reference (NaN stays NaN through
// ReLU, ReLU6, PReLU and clamps; VMAXPS/VMINPS return their second operand
// when either is NaN).
func TestNonFiniteGemm(t *testing.T) {
	forEachISA(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(71, 72))
		ws := NewWorkspace(1, nil)
		for _, tc := range []gemmCase{{13, 1, 9}, {13, 7, 9}, {7, 16, 5}, {37, 67, 20}, {5, 33, 3}} {
			m, n, k := tc.m, tc.n, tc.k
			for name, ep := range nonFiniteEpilogues(rng, m) {
				a := randSlice(rng, m*k)
				b := randSlice(rng, k*n)
				sprinkle(b, n)
				c0 := randSlice(rng, m*n)
				if ep.Accumulate {
					sprinkle(c0, m)
				}
				refEp, prev := *ep, c0
				if name == "residual" {
					ep.Residual = randSlice(rng, m*n)
					sprinkle(ep.Residual, m+1)
					prev, refEp.Accumulate = ep.Residual, true
				}
				c := append([]float32(nil), c0...)
				ws.Gemm(c, n, PackA(a, m, k, k), b, n, n, ep)
				checkNonFinite(t, fmt.Sprintf("%s m%d n%d k%d", name, m, n, k), c, refGemm(a, b, prev, m, n, k, n, &refEp), 1e-5)
			}
		}
	})
}

// TestNonFiniteWinograd puts NaN and ±Inf into the Winograd output
// transform's epilogue (bias, old C, residual) on every kernel path.
func TestNonFiniteWinograd(t *testing.T) {
	forEachISA(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(73, 74))
		ws := NewWorkspace(1, nil)
		for _, s := range []ConvShape{sq3(5, 9, 11, 6, 1), sq3(3, 16, 40, 4, 1)} {
			for _, m := range []int{2, 4} {
				for name, ep := range nonFiniteEpilogues(rng, s.OutC) {
					src := randSlice(rng, s.C*s.H*s.W)
					w := randSlice(rng, s.OutC*s.K())
					img := s.OutC * s.OutH() * s.OutW()
					old := randSlice(rng, img)
					if ep.Accumulate {
						sprinkle(old, m)
					}
					refEp, prev := *ep, old
					if name == "residual" {
						ep.Residual = randSlice(rng, img)
						sprinkle(ep.Residual, m+1)
						prev, refEp.Accumulate = ep.Residual, true
					}
					dst := append([]float32(nil), old...)
					ws.Winograd(dst, src, 1, PackWinograd(w, s, m), s, ep)
					checkNonFinite(t, fmt.Sprintf("F%d %s %+v", m, name, s), dst, refConv(src, w, s, prev, &refEp), 1e-3)
				}
			}
		}
	})
}

// TestNonFiniteDepthwise runs NaN and ±Inf through the depthwise kernel
// (in the input, the bias and the old output) with every epilogue.
func TestNonFiniteDepthwise(t *testing.T) {
	forEachISA(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(75, 76))
		ws := NewWorkspace(1, nil)
		for _, tt := range []struct{ c, h, w, s int }{{4, 9, 40, 1}, {5, 7, 7, 2}, {3, 3, 3, 1}} {
			oh, ow := DepthwiseOut(tt.h, tt.w, tt.s)
			for name, ep := range nonFiniteEpilogues(rng, tt.c) {
				if name == "residual" {
					continue // not a depthwise epilogue
				}
				src := randSlice(rng, tt.c*tt.h*tt.w)
				src[len(src)/2] = nan
				wts := randSlice(rng, tt.c*9)
				old := randSlice(rng, tt.c*oh*ow)
				if ep.Accumulate {
					sprinkle(old, tt.c)
				}
				dst := append([]float32(nil), old...)
				ws.Depthwise3x3(dst, src, wts, tt.c, tt.h, tt.w, tt.s, ep)
				var want []float64
				for ch := 0; ch < tt.c; ch++ {
					s := ConvShape{C: 1, H: tt.h, W: tt.w, OutC: 1, KH: 3, KW: 3, StrideH: tt.s, StrideW: tt.s, PadH: 1, PadW: 1}
					e := &Epilogue{Act: ep.Act, Accumulate: ep.Accumulate, Bias: ep.Bias[ch:]}
					if ep.Slope != nil {
						e.Slope = ep.Slope[ch:]
					}
					if ep.Min != nil {
						e.Min, e.Max = ep.Min[ch:], ep.Max[ch:]
					}
					want = append(want, refConv(src[ch*tt.h*tt.w:], wts[ch*9:], s, old[ch*oh*ow:], e)...)
				}
				checkNonFinite(t, fmt.Sprintf("%s %v", name, tt), dst, want, 1e-5)
			}
		}
	})
}

// TestNonFinitePools checks max and average pooling propagate NaN and ±Inf
// like the reference (a NaN in a window makes its maximum NaN).
func TestNonFinitePools(t *testing.T) {
	rng := rand.New(rand.NewPCG(77, 78))
	c, h, w, k, s, p := 3, 9, 10, 3, 2, 1
	src := randSlice(rng, c*h*w)
	src[5], src[37], src[95], src[200] = nan, pinf, ninf, nan
	oh, ow := PoolOut(h, k, s, p), PoolOut(w, k, s, p)
	wantMax, wantAvg := make([]float64, c*oh*ow), make([]float64, c*oh*ow)
	for ch := 0; ch < c; ch++ {
		for oy := 0; oy < oh; oy++ {
			for ox := 0; ox < ow; ox++ {
				m, sum := math.Inf(-1), 0.0
				for ky := 0; ky < k; ky++ {
					for kx := 0; kx < k; kx++ {
						y, x := oy*s+ky-p, ox*s+kx-p
						if y >= 0 && y < h && x >= 0 && x < w {
							v := float64(src[(ch*h+y)*w+x])
							m, sum = math.Max(m, v), sum+v
						}
					}
				}
				wantMax[(ch*oh+oy)*ow+ox], wantAvg[(ch*oh+oy)*ow+ox] = m, sum/float64(k*k)
			}
		}
	}
	for _, ws := range []*Workspace{NewWorkspace(1, nil), NewWorkspace(3, serialPar(3))} {
		dst := make([]float32, c*oh*ow)
		ws.Pool2D(false, dst, src, c, h, w, k, s, p)
		checkNonFinite(t, "max pool", dst, wantMax, 0)
		ws.Pool2D(true, dst, src, c, h, w, k, s, p)
		checkNonFinite(t, "avg pool", dst, wantAvg, 1e-6)
	}
}
