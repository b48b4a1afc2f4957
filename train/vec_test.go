package train

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestVecHelpers compares the unrolled elementwise passes with plain
// float64 loops on random data of every length 0..200 (the unrolled bodies,
// their remainders and several sum runs), at unaligned offsets.
func TestVecHelpers(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	rnd := func(n int) []float32 {
		p := make([]float32, n+1)
		for i := range p {
			p[i] = float32(rng.NormFloat64())
			if rng.IntN(4) == 0 {
				p[i] = 0 // exact zeros: the ReLU gate's boundary
			}
		}
		return p[1:] // unaligned
	}
	near := func(got, want float64, n int) bool { return math.Abs(got-want) <= 1e-5*float64(n+1) }
	for n := 0; n <= 200; n++ {
		x, g, y := rnd(n), rnd(n), rnd(n)
		for i := range y {
			y[i] = max(y[i], 0)
		}
		const m = 0.25
		var ws, wss, wd, wdx, wgd, wgdx float64
		gated := make([]float32, n)
		for i := range x {
			ws += float64(x[i])
			wss += float64(x[i]) * float64(x[i])
			wd += float64(g[i])
			wdx += float64(g[i]) * (float64(x[i]) - m)
			if y[i] > 0 {
				gated[i] = g[i]
				wgd += float64(g[i])
				wgdx += float64(g[i]) * (float64(x[i]) - m)
			}
		}
		if s, ss := sumSq(x); !near(s, ws, n) || !near(ss, wss, n) {
			t.Fatalf("n=%d sumSq: got %g, %g; want %g, %g", n, s, ss, ws, wss)
		}
		if s, sx := sumDot(g, x, m); !near(s, wd, n) || !near(sx, wdx, n) {
			t.Fatalf("n=%d sumDot: got %g, %g; want %g, %g", n, s, sx, wd, wdx)
		}
		d2 := rnd(n)
		orig2 := append([]float32(nil), d2...)
		d := make([]float32, n)
		gate2(d, d2, g, y, true)
		for i := range d {
			if d[i] != gated[i] || d2[i] != orig2[i]+gated[i] {
				t.Fatalf("n=%d gate2[%d]: got %g, %g; want %g, %g", n, i, d[i], d2[i], gated[i], orig2[i]+gated[i])
			}
		}
		gc := append([]float32(nil), g...)
		if s, sx := gateSumDot(gc, y, x, m); !near(s, wgd, n) || !near(sx, wgdx, n) {
			t.Fatalf("n=%d gateSumDot: got %g, %g; want %g, %g", n, s, sx, wgd, wgdx)
		}
		for i := range gc {
			if gc[i] != gated[i] {
				t.Fatalf("n=%d gateSumDot gated[%d]: got %g; want %g", n, i, gc[i], gated[i])
			}
		}
		out := make([]float32, n)
		scaleShift(out, x, 1.5, -0.5, true)
		for i := range out {
			if want := max(x[i]*1.5-0.5, 0); out[i] != want {
				t.Fatalf("n=%d scaleShift[%d]: got %g; want %g", n, i, out[i], want)
			}
		}
		addTo(out, x, g, false)
		for i := range out {
			if want := x[i] + g[i]; out[i] != want {
				t.Fatalf("n=%d addTo[%d]: got %g; want %g", n, i, out[i], want)
			}
		}
		bnInputGrad(out, g, x, 2, 0.5, 0.25, m, false)
		for i := range out {
			if want := 2*g[i] - 0.5 - 0.25*(x[i]-m); math.Abs(float64(out[i]-want)) > 1e-6 {
				t.Fatalf("n=%d bnInputGrad[%d]: got %g; want %g", n, i, out[i], want)
			}
		}
	}
}
