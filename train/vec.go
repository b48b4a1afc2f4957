package train

import "github.com/rmprune/rmprune/kernels"

// The per-channel elementwise passes of BatchNorm, ReLU, add (and masks) run
// on the kernels package's vector code (AVX-512/AVX2, Go on other paths):
// see kernels.ScaleShift and its neighbours. These short names keep the
// call sites readable.

// sumSq returns Σp and Σp².
func sumSq(p []float32) (s, ss float64) { return kernels.SumSq(p) }

// sumDot returns Σdy and Σdy·(x−m) (BatchNorm backward's reductions).
func sumDot(dy, x []float32, m float32) (s, sx float64) { return kernels.SumDot(dy, x, m) }

// gateSumDot gates dy in place by a ReLU's output y (dy = 0 where y is 0)
// and returns the gated Σdy and Σdy·(x−m).
func gateSumDot(dy, y, x []float32, m float32) (s, sx float64) {
	return kernels.GateSumDot(dy, y, x, m)
}

// gate writes dst[i] = g[i] where y[i] > 0, else 0 (the gradient through
// a ReLU whose output is y); dst may be g.
func gate(dst, g, y []float32) { kernels.Gate(dst, g, y) }

// gate2 is gate writing the gated gradient to dst and also to (or, with
// acc, adding it into) dst2.
func gate2(dst, dst2, g, y []float32, acc bool) { kernels.Gate2(dst, dst2, g, y, acc) }

// scaleShift writes dst = src·a + b, through a ReLU when relu is set.
func scaleShift(dst, src []float32, a, b float32, relu bool) {
	kernels.ScaleShift(dst, src, a, b, relu)
}

// bnInputGrad writes (or, with acc, adds) dx = k1·dy − k2 − k3·(x−m).
func bnInputGrad(dx, dy, x []float32, k1, k2, k3, m float32, acc bool) {
	kernels.BNInputGrad(dx, dy, x, k1, k2, k3, m, acc)
}

// addTo writes dst = a + b, through a ReLU when relu is set.
func addTo(dst, a, b []float32, relu bool) { kernels.AddTo(dst, a, b, relu) }

// reluGrad returns g where the ReLU output y (≥ 0) is positive, else 0,
// without a branch.
func reluGrad(g, y float32) float32 { return kernels.ReLUGrad(g, y) }
