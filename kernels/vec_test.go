package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestVec compares every path's elementwise training passes with float64
// loops on random data of every length 0..200 and a few longer ones (several
// vecRun runs), at unaligned offsets, with guards around the outputs. The
// data has exact zeros (the ReLU gate's boundary).
func TestVec(t *testing.T) {
	lengths := []int{1000, 1024, 2049, 5000}
	for n := 0; n <= 200; n++ {
		lengths = append(lengths, n)
	}
	forEachISA(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(3, 4))
		rnd := func(n int) []float32 {
			p := make([]float32, n+1+rng.IntN(3))
			for i := range p {
				p[i] = float32(rng.NormFloat64())
				if rng.IntN(4) == 0 {
					p[i] = 0
				}
			}
			return p[len(p)-n:]
		}
		// Sums: |got − want| within float32 rounding of Σ|terms|.
		near := func(got, want, abs float64) bool { return math.Abs(got-want) <= 2e-6*abs+1e-30 }
		for _, n := range lengths {
			name := fmt.Sprintf("n=%d", n)
			x, g, y := rnd(n), rnd(n), rnd(n)
			for i := range y {
				y[i] = max(y[i], 0)
			}
			const m = 0.25
			var ws, wss, as, wd, wdx, ad, adx, wgd, wgdx float64
			gated := make([]float32, n)
			for i := range x {
				xv, gv := float64(x[i]), float64(g[i])
				ws += xv
				wss += xv * xv
				as += math.Abs(xv)
				wd += gv
				wdx += gv * (xv - m)
				ad += math.Abs(gv)
				adx += math.Abs(gv * (xv - m))
				if y[i] != 0 {
					gated[i] = g[i]
					wgd += gv
					wgdx += gv * (xv - m)
				}
			}
			if s, ss := SumSq(x); !near(s, ws, as) || !near(ss, wss, wss) {
				t.Fatalf("%s SumSq: got %g, %g; want %g, %g", name, s, ss, ws, wss)
			}
			if s, sx := SumDot(g, x, m); !near(s, wd, ad) || !near(sx, wdx, adx) {
				t.Fatalf("%s SumDot: got %g, %g; want %g, %g", name, s, sx, wd, wdx)
			}
			gc := append([]float32(nil), g...)
			if s, sx := GateSumDot(gc, y, x, m); !near(s, wgd, ad) || !near(sx, wgdx, adx) {
				t.Fatalf("%s GateSumDot: got %g, %g; want %g, %g", name, s, sx, wgd, wgdx)
			}
			for i := range gc {
				if gc[i] != gated[i] {
					t.Fatalf("%s GateSumDot gated[%d]: got %g; want %g", name, i, gc[i], gated[i])
				}
			}
			off := 1 + n%3
			check := func(op string, got []float32, buf []float32, want func(i int) float64, tol float64) {
				t.Helper()
				checkGuards(t, buf, off, n, func(int) bool { return true })
				for i := range got {
					w := want(i)
					if d := math.Abs(float64(got[i]) - w); !(d <= tol*(1+math.Abs(w))) {
						t.Fatalf("%s %s[%d]: got %g; want %g", name, op, i, got[i], w)
					}
				}
			}
			for _, relu := range []bool{false, true} {
				out, buf := guarded(n, off)
				ScaleShift(out, x, 1.5, -0.5, relu)
				check(fmt.Sprintf("ScaleShift(relu=%v)", relu), out, buf, func(i int) float64 {
					v := float64(x[i])*1.5 - 0.5
					if relu {
						v = max(v, 0)
					}
					return v
				}, 1e-6)
				out, buf = guarded(n, off)
				AddTo(out, x, g, relu)
				check(fmt.Sprintf("AddTo(relu=%v)", relu), out, buf, func(i int) float64 {
					v := float64(x[i] + g[i])
					if relu {
						v = max(v, 0)
					}
					return v
				}, 0)
			}
			for _, acc := range []bool{false, true} {
				out, buf := guarded(n, off)
				old := rnd(n)
				copy(out, old)
				BNInputGrad(out, g, x, 2, 0.5, 0.25, m, acc)
				check(fmt.Sprintf("BNInputGrad(acc=%v)", acc), out, buf, func(i int) float64 {
					v := 2*float64(g[i]) - 0.5 - 0.25*(float64(x[i])-m)
					if acc {
						v += float64(old[i])
					}
					return v
				}, 1e-6)
				out, buf = guarded(n, off)
				out2, buf2 := guarded(n, off)
				copy(out2, old)
				Gate2(out, out2, g, y, acc)
				check("Gate2", out, buf, func(i int) float64 { return float64(gated[i]) }, 0)
				check(fmt.Sprintf("Gate2(acc=%v) dst2", acc), out2, buf2, func(i int) float64 {
					if acc {
						return float64(old[i] + gated[i])
					}
					return float64(gated[i])
				}, 0)
			}
			out, buf := guarded(n, off)
			Gate(out, g, y)
			check("Gate", out, buf, func(i int) float64 { return float64(gated[i]) }, 0)
			var wv, wvv, av, wgab, agab, wdab float64
			for i := range x {
				v := float64(x[i] + g[i])
				wv += v
				wvv += v * v
				av += math.Abs(v)
				wgab += float64(gated[i]) * (float64(x[i]) + float64(y[i]))
				agab += math.Abs(float64(g[i]) * (float64(x[i]) + float64(y[i])))
				wdab += float64(g[i]) * (float64(x[i]) + float64(y[i]))
			}
			for _, relu := range []bool{false, true} {
				out, buf := guarded(n, off)
				s, ss := AddScaleStats(out, x, g, 1.5, relu)
				if !near(s, wv, av) || !near(ss, wvv, wvv) {
					t.Fatalf("%s AddScaleStats: got %g, %g; want %g, %g", name, s, ss, wv, wvv)
				}
				check(fmt.Sprintf("AddScaleStats(relu=%v)", relu), out, buf, func(i int) float64 {
					v := 1.5 * float64(x[i]+g[i])
					if relu {
						v = max(v, 0)
					}
					return v
				}, 1e-6)
			}
			for _, gated2 := range []bool{false, true} {
				out, buf := guarded(n, off)
				var yy []float32
				want := wdab
				if gated2 {
					yy, want = y, wgab
				}
				s := GateDot2Scale(out, g, yy, x, y, 0.75)
				if !near(s, want, agab) {
					t.Fatalf("%s GateDot2Scale(gate=%v): got %g; want %g", name, gated2, s, want)
				}
				check(fmt.Sprintf("GateDot2Scale(gate=%v)", gated2), out, buf, func(i int) float64 {
					if gated2 {
						return 0.75 * float64(gated[i])
					}
					return 0.75 * float64(g[i])
				}, 1e-7)
			}
		}
	})
}

// TestVecSpecial checks what the scalar Go code does with NaN and −0 on every
// path: a ReLU keeps NaN and turns −0 into +0; the gate passes NaN outputs
// and blocks +0 ones.
func TestVecSpecial(t *testing.T) {
	nan := float32(math.NaN())
	negZero := float32(math.Copysign(0, -1))
	forEachISA(t, func(t *testing.T) {
		n := 37
		x := make([]float32, n)
		g := make([]float32, n)
		for i := range x {
			x[i] = float32(i%5) - 2
			g[i] = 1
		}
		x[3], x[20] = nan, nan
		x[4], x[21] = negZero, negZero
		out := make([]float32, n)
		ScaleShift(out, x, 1, negZero, true)
		AddTo(x, x, make([]float32, n), false) // x + 0 keeps NaN; −0 + +0 = +0
		for i := range out {
			want := max(x[i]+negZero, 0)
			if math.Float32bits(out[i]) != math.Float32bits(want) && !(math.IsNaN(float64(out[i])) && math.IsNaN(float64(want))) {
				t.Fatalf("ScaleShift relu [%d] of %g: got %g (bits %x); want %g", i, x[i], out[i], math.Float32bits(out[i]), want)
			}
		}
		y := make([]float32, n)
		for i := range y {
			y[i] = float32(i % 2)
		}
		y[6], y[9] = nan, nan
		Gate(out, g, y)
		for i := range out {
			want := float32(0)
			if i%2 == 1 || i == 6 || i == 9 {
				want = 1
			}
			if out[i] != want {
				t.Fatalf("Gate [%d] with y %g: got %g; want %g", i, y[i], out[i], want)
			}
		}
	})
}

// TestTranspose8 compares Transpose8 on every path with the definition for
// n = 0..40 (full blocks, the stepped-back last block, n < 8), with guards.
func TestTranspose8(t *testing.T) {
	forEachISA(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(5, 6))
		for n := 0; n <= 40; n++ {
			ss := n + rng.IntN(5)
			ds := 8 + rng.IntN(9)
			src := randSlice(rng, 7*ss+n)
			size := 0
			if n > 0 {
				size = (n-1)*ds + 8
			}
			dst, buf := guarded(size, 2)
			Transpose8(dst, ds, src, ss, n)
			checkGuards(t, buf, 2, size, func(i int) bool { return i%ds < 8 })
			for q := 0; q < n; q++ {
				for r := 0; r < 8; r++ {
					if got, want := dst[q*ds+r], src[r*ss+q]; got != want {
						t.Fatalf("n=%d dst[%d][%d]: got %g; want %g", n, q, r, got, want)
					}
				}
			}
		}
	})
}

// TestRowKernels compares the AVX-512 row kernels (Winograd input column
// phases, block copy) with their definitions for widths 0..70 and 1–3 rows,
// with guards around and between the rows.
func TestRowKernels(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, ks := range sets {
		e := ks.ew
		if e == nil || e.deint4Rows == nil {
			continue
		}
		for n := 0; n <= 70; n++ {
			for rows := 1; rows <= 3; rows++ {
				ss := n + rng.IntN(4)
				src := randSlice(rng, (rows-1)*ss+n+1)
				for _, m := range []int{2, 4} {
					ds := (n+m-1)/m + 1 + rng.IntN(4)
					size := (rows-1)*ds + (n+m-1)/m
					var d [4][]float32
					var bufs [4][]float32
					for k := 0; k < m; k++ {
						d[k], bufs[k] = guarded(size+1, 1)
					}
					if m == 2 {
						e.deint2Rows(&d[0][0], &d[1][0], ds, &src[0], ss, n, rows)
					} else {
						e.deint4Rows(&d[0][0], &d[1][0], &d[2][0], &d[3][0], ds, &src[0], ss, n, rows)
					}
					for k := 0; k < m; k++ {
						cnt := (n - k + m - 1) / m
						checkGuards(t, bufs[k], 1, size+1, func(i int) bool { return i%ds < cnt && i/ds < rows })
						for r := 0; r < rows; r++ {
							for j := 0; j < cnt; j++ {
								if got, want := d[k][r*ds+j], src[r*ss+m*j+k]; got != want {
									t.Fatalf("%s deint%dRows n=%d rows=%d: phase %d row %d [%d]: got %g; want %g", ks.name, m, n, rows, k, r, j, got, want)
								}
							}
						}
					}
				}
				ds := n + 1 + rng.IntN(4)
				size := (rows-1)*ds + n
				dst, buf := guarded(size, 2)
				if size > 0 {
					e.copyRows(&dst[0], ds, &src[0], ss, rows, n)
				}
				checkGuards(t, buf, 2, size, func(i int) bool { return i%ds < n })
				for r := 0; r < rows; r++ {
					for j := 0; j < n; j++ {
						if got, want := dst[r*ds+j], src[r*ss+j]; got != want {
							t.Fatalf("%s copyRows n=%d rows=%d [%d][%d]: got %g; want %g", ks.name, n, rows, r, j, got, want)
						}
					}
				}
			}
		}
	}
}
