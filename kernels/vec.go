package kernels

import "math"

// The elementwise passes of training: BatchNorm forward (scale and shift,
// batch statistics) and backward (the two reductions, the input gradient),
// ReLU gates and residual adds, on []float32. Each runs its largest prefix
// that is a multiple of the vector width on the active path's assembly
// kernels (AVX-512 or AVX2, generated in _asm/vec.go) and the rest, or
// everything on the generic path, in Go written so that the compiler drops
// the bounds checks, with eight independent accumulators per reduction.
//
// Reductions sum float32 partial sums over runs of at most vecRun floats (the
// assembly keeps 4 vector accumulators, the Go code 8 scalar ones per run of
// sumRun) and add the runs in float64, which keeps the rounding error of
// long sums small.

// vecKernels is one path's assembly kernels; n is a multiple of width.
type vecKernels struct {
	width                            int
	scaleShift, scaleShiftReLU       func(dst, src *float32, n int, a, b float32)
	sumSq                            func(p *float32, n int) (s, ss float32)
	sumDot                           func(dy, x *float32, n int, m float32) (s, sx float32)
	gateSumDot                       func(dy, y, x *float32, n int, m float32) (s, sx float32)
	bnInputGrad, bnInputGradAcc      func(dx, dy, x *float32, n int, k1, k2, k3, m float32)
	add, addReLU                     func(dst, a, b *float32, n int)
	gate                             func(dst, g, y *float32, n int)
	gate2, gate2Acc                  func(dst, dst2, g, y *float32, n int)
	transpose8                       func(dst *float32, dstStride int, src *float32, srcStride, n int) // n ≥ 8
	addScaleStats, addScaleStatsReLU func(dst, a, b *float32, n int, m float32) (s, ss float32)
	dot2Scale                        func(dst, dy, a, b *float32, n int, m float32) float32
	gateDot2Scale                    func(dst, dy, y, a, b *float32, n int, m float32) float32

	// AVX-512 only (nil elsewhere): Winograd input column phases of whole
	// row blocks (dk[r·dstStride + i/m] = src[r·srcStride + i], k = i%m)
	// and a block copy with masked tails (see copyFunc).
	deint2Rows func(d0, d1 *float32, dstStride int, src *float32, srcStride, n, rows int)
	deint4Rows func(d0, d1, d2, d3 *float32, dstStride int, src *float32, srcStride, n, rows int)
	copyRows   copyFunc
}

const (
	vecRun = 1024 // floats per float32 partial sum of the assembly reductions
	sumRun = 64   // the same for the Go reductions
)

// vecPrefix returns the part of n the path's kernels take (0 without kernels).
func vecPrefix(e *vecKernels, n int) int {
	if e == nil {
		return 0
	}
	return n &^ (e.width - 1)
}

// ScaleShift writes dst[i] = src[i]·a + b, through a ReLU (max(·, 0)) when
// relu is set (BatchNorm forward with its statistics folded into a and b).
// dst needs len(src) elements.
func ScaleShift(dst, src []float32, a, b float32, relu bool) {
	dst = dst[:len(src)]
	if e := active.ew; vecPrefix(e, len(src)) > 0 {
		k := vecPrefix(e, len(src))
		if relu {
			e.scaleShiftReLU(&dst[0], &src[0], k, a, b)
		} else {
			e.scaleShift(&dst[0], &src[0], k, a, b)
		}
		dst, src = dst[k:], src[k:]
	}
	scaleShiftGo(dst, src, a, b, relu)
}

// SumSq returns Σp and Σp².
func SumSq(p []float32) (s, ss float64) {
	if e := active.ew; e != nil {
		for k := vecPrefix(e, min(len(p), vecRun)); k > 0; k = vecPrefix(e, min(len(p), vecRun)) {
			a, b := e.sumSq(&p[0], k)
			s += float64(a)
			ss += float64(b)
			p = p[k:]
		}
	}
	a, b := sumSqGo(p)
	return s + a, ss + b
}

// SumDot returns Σdy and Σdy·(x−m) (BatchNorm backward's reductions); x
// needs len(dy) elements.
func SumDot(dy, x []float32, m float32) (s, sx float64) {
	x = x[:len(dy)]
	if e := active.ew; e != nil {
		for k := vecPrefix(e, min(len(dy), vecRun)); k > 0; k = vecPrefix(e, min(len(dy), vecRun)) {
			a, b := e.sumDot(&dy[0], &x[0], k, m)
			s += float64(a)
			sx += float64(b)
			dy, x = dy[k:], x[k:]
		}
	}
	a, b := sumDotGo(dy, x, m)
	return s + a, sx + b
}

// GateSumDot gates dy in place by a ReLU's output y (dy = 0 where y is 0,
// see [Gate]) and returns the gated Σdy and Σdy·(x−m); y and x need len(dy)
// elements.
func GateSumDot(dy, y, x []float32, m float32) (s, sx float64) {
	y = y[:len(dy)]
	x = x[:len(dy)]
	if e := active.ew; e != nil {
		for k := vecPrefix(e, min(len(dy), vecRun)); k > 0; k = vecPrefix(e, min(len(dy), vecRun)) {
			a, b := e.gateSumDot(&dy[0], &y[0], &x[0], k, m)
			s += float64(a)
			sx += float64(b)
			dy, y, x = dy[k:], y[k:], x[k:]
		}
	}
	for i := 0; i < len(dy); i += 8 * sumRun {
		e := min(i+8*sumRun, len(dy))
		gateGo(dy[i:e], dy[i:e], y[i:e])
		a, b := sumDotGo(dy[i:e], x[i:e], m)
		s += a
		sx += b
	}
	return s, sx
}

// BNInputGrad writes (or, with acc, adds) dx = k1·dy − k2 − k3·(x−m); dy and
// x need len(dx) elements.
func BNInputGrad(dx, dy, x []float32, k1, k2, k3, m float32, acc bool) {
	dy = dy[:len(dx)]
	x = x[:len(dx)]
	if e := active.ew; vecPrefix(e, len(dx)) > 0 {
		k := vecPrefix(e, len(dx))
		if acc {
			e.bnInputGradAcc(&dx[0], &dy[0], &x[0], k, k1, k2, k3, m)
		} else {
			e.bnInputGrad(&dx[0], &dy[0], &x[0], k, k1, k2, k3, m)
		}
		dx, dy, x = dx[k:], dy[k:], x[k:]
	}
	bnInputGradGo(dx, dy, x, k1, k2, k3, m, acc)
}

// AddTo writes dst = a + b, through a ReLU when relu is set; b and dst need
// len(a) elements.
func AddTo(dst, a, b []float32, relu bool) {
	b = b[:len(a)]
	dst = dst[:len(a)]
	if e := active.ew; vecPrefix(e, len(a)) > 0 {
		k := vecPrefix(e, len(a))
		if relu {
			e.addReLU(&dst[0], &a[0], &b[0], k)
		} else {
			e.add(&dst[0], &a[0], &b[0], k)
		}
		dst, a, b = dst[k:], a[k:], b[k:]
	}
	addGo(dst, a, b, relu)
}

// Gate writes dst[i] = g[i] where the ReLU output y[i] is not 0 (any other
// bit pattern, NaN included, passes), else 0: the gradient through a ReLU
// whose output is y. dst may be g; g and y need len(dst) elements.
func Gate(dst, g, y []float32) {
	g = g[:len(dst)]
	y = y[:len(dst)]
	if e := active.ew; vecPrefix(e, len(dst)) > 0 {
		k := vecPrefix(e, len(dst))
		e.gate(&dst[0], &g[0], &y[0], k)
		dst, g, y = dst[k:], g[k:], y[k:]
	}
	gateGo(dst, g, y)
}

// Gate2 is [Gate] writing the gated gradient to dst and also to (or, with
// acc, adding it into) dst2.
func Gate2(dst, dst2, g, y []float32, acc bool) {
	g = g[:len(dst)]
	y = y[:len(dst)]
	dst2 = dst2[:len(dst)]
	if e := active.ew; vecPrefix(e, len(dst)) > 0 {
		k := vecPrefix(e, len(dst))
		if acc {
			e.gate2Acc(&dst[0], &dst2[0], &g[0], &y[0], k)
		} else {
			e.gate2(&dst[0], &dst2[0], &g[0], &y[0], k)
		}
		dst, dst2, g, y = dst[k:], dst2[k:], g[k:], y[k:]
	}
	gate2Go(dst, dst2, g, y, acc)
}

// AddScaleStats writes dst = m·(a+b), through a ReLU when relu is set, and
// returns Σ(a+b) and Σ(a+b)² (a masked residual sum and its running
// statistics in one pass); b and dst need len(a) elements.
func AddScaleStats(dst, a, b []float32, m float32, relu bool) (s, ss float64) {
	b = b[:len(a)]
	dst = dst[:len(a)]
	if e := active.ew; e != nil {
		for k := vecPrefix(e, min(len(a), vecRun)); k > 0; k = vecPrefix(e, min(len(a), vecRun)) {
			var x, y float32
			if relu {
				x, y = e.addScaleStatsReLU(&dst[0], &a[0], &b[0], k, m)
			} else {
				x, y = e.addScaleStats(&dst[0], &a[0], &b[0], k, m)
			}
			s += float64(x)
			ss += float64(y)
			dst, a, b = dst[k:], a[k:], b[k:]
		}
	}
	for i := 0; i < len(a); i += sumRun {
		var s32, ss32 float32
		j := min(i+sumRun, len(a))
		for q := i; q < j; q++ {
			v := a[q] + b[q]
			s32 += v
			ss32 += v * v
			y := m * v
			if relu {
				y = max(y, 0)
			}
			dst[q] = y
		}
		s += float64(s32)
		ss += float64(ss32)
	}
	return s, ss
}

// GateDot2Scale takes g = dy, gated by the ReLU output y unless y is nil
// (see [Gate]), writes dst = m·g and returns Σg·(a+b) (a masked residual
// sum's backward in one pass). dst may be dy; the others need len(dst)
// elements.
func GateDot2Scale(dst, dy, y, a, b []float32, m float32) float64 {
	dy = dy[:len(dst)]
	a = a[:len(dst)]
	b = b[:len(dst)]
	if y != nil {
		y = y[:len(dst)]
	}
	var s float64
	if e := active.ew; e != nil {
		for k := vecPrefix(e, min(len(dst), vecRun)); k > 0; k = vecPrefix(e, min(len(dst), vecRun)) {
			if y != nil {
				s += float64(e.gateDot2Scale(&dst[0], &dy[0], &y[0], &a[0], &b[0], k, m))
				y = y[k:]
			} else {
				s += float64(e.dot2Scale(&dst[0], &dy[0], &a[0], &b[0], k, m))
			}
			dst, dy, a, b = dst[k:], dy[k:], a[k:], b[k:]
		}
	}
	for i := 0; i < len(dst); i += sumRun {
		var s32 float32
		j := min(i+sumRun, len(dst))
		for q := i; q < j; q++ {
			g := dy[q]
			if y != nil {
				g = ReLUGrad(g, y[q])
			}
			s32 += g * (a[q] + b[q])
			dst[q] = m * g
		}
		s += float64(s32)
	}
	return s
}

// Transpose8 writes dst[q·dstStride + r] = src[r·srcStride + q] for r < 8
// and q < n: 8 rows of n floats as n rows of 8 (channels-last copies, GEMM
// panels of 8 rows).
func Transpose8(dst []float32, dstStride int, src []float32, srcStride, n int) {
	if n <= 0 {
		return
	}
	if len(src) < 7*srcStride+n || len(dst) < (n-1)*dstStride+8 {
		panic("kernels: Transpose8 slices too short")
	}
	if e := active.ew; e != nil && n >= 8 {
		e.transpose8(&dst[0], dstStride, &src[0], srcStride, n)
		return
	}
	for r := 0; r < 8; r++ {
		row := src[r*srcStride : r*srcStride+n]
		for q, v := range row {
			dst[q*dstStride+r] = v
		}
	}
}

// ReLUGrad returns g where the ReLU output y is not 0, else 0, without a
// branch (the scalar form of [Gate]).
func ReLUGrad(g, y float32) float32 {
	b := math.Float32bits(y)
	m := uint32(int32(b|-b) >> 31)
	return math.Float32frombits(math.Float32bits(g) & m)
}

// The Go versions: the generic path, and the tails of the others.

func sumSqGo(p []float32) (s, ss float64) {
	for len(p) >= sumRun {
		a, b := sumSq8(p[:sumRun])
		s += a
		ss += b
		p = p[sumRun:]
	}
	a, b := sumSq8(p)
	return s + a, ss + b
}

func sumSq8(p []float32) (float64, float64) {
	var s0, s1, s2, s3, s4, s5, s6, s7 float32
	var q0, q1, q2, q3, q4, q5, q6, q7 float32
	for len(p) >= 8 {
		v := p[:8:8]
		s0 += v[0]
		s1 += v[1]
		s2 += v[2]
		s3 += v[3]
		s4 += v[4]
		s5 += v[5]
		s6 += v[6]
		s7 += v[7]
		q0 += v[0] * v[0]
		q1 += v[1] * v[1]
		q2 += v[2] * v[2]
		q3 += v[3] * v[3]
		q4 += v[4] * v[4]
		q5 += v[5] * v[5]
		q6 += v[6] * v[6]
		q7 += v[7] * v[7]
		p = p[8:]
	}
	for _, v := range p {
		s0 += v
		q0 += v * v
	}
	return float64((s0 + s1) + (s2 + s3) + ((s4 + s5) + (s6 + s7))),
		float64((q0 + q1) + (q2 + q3) + ((q4 + q5) + (q6 + q7)))
}

func sumDotGo(dy, x []float32, m float32) (s, sx float64) {
	x = x[:len(dy)]
	for len(dy) >= sumRun {
		a, b := sumDot8(dy[:sumRun], x[:sumRun], m)
		s += a
		sx += b
		dy, x = dy[sumRun:], x[sumRun:]
	}
	a, b := sumDot8(dy, x, m)
	return s + a, sx + b
}

func sumDot8(dy, x []float32, m float32) (float64, float64) {
	var s0, s1, s2, s3, s4, s5, s6, s7 float32
	var q0, q1, q2, q3, q4, q5, q6, q7 float32
	x = x[:len(dy)]
	for len(dy) >= 8 {
		g, v := dy[:8:8], x[:8:8]
		s0 += g[0]
		s1 += g[1]
		s2 += g[2]
		s3 += g[3]
		s4 += g[4]
		s5 += g[5]
		s6 += g[6]
		s7 += g[7]
		q0 += g[0] * (v[0] - m)
		q1 += g[1] * (v[1] - m)
		q2 += g[2] * (v[2] - m)
		q3 += g[3] * (v[3] - m)
		q4 += g[4] * (v[4] - m)
		q5 += g[5] * (v[5] - m)
		q6 += g[6] * (v[6] - m)
		q7 += g[7] * (v[7] - m)
		dy, x = dy[8:], x[8:]
	}
	for i, g := range dy {
		s0 += g
		q0 += g * (x[i] - m)
	}
	return float64((s0 + s1) + (s2 + s3) + ((s4 + s5) + (s6 + s7))),
		float64((q0 + q1) + (q2 + q3) + ((q4 + q5) + (q6 + q7)))
}

func gateGo(dst, g, y []float32) {
	g = g[:len(dst)]
	y = y[:len(dst)]
	for i, v := range y {
		dst[i] = ReLUGrad(g[i], v)
	}
}

func gate2Go(dst, dst2, g, y []float32, acc bool) {
	g = g[:len(dst)]
	y = y[:len(dst)]
	dst2 = dst2[:len(dst)]
	if acc {
		for i, v := range y {
			d := ReLUGrad(g[i], v)
			dst[i] = d
			dst2[i] += d
		}
		return
	}
	for i, v := range y {
		d := ReLUGrad(g[i], v)
		dst[i] = d
		dst2[i] = d
	}
}

func scaleShiftGo(dst, src []float32, a, b float32, relu bool) {
	dst = dst[:len(src)]
	if relu {
		for i, v := range src {
			dst[i] = max(v*a+b, 0)
		}
		return
	}
	for i, v := range src {
		dst[i] = v*a + b
	}
}

func bnInputGradGo(dx, dy, x []float32, k1, k2, k3, m float32, acc bool) {
	dy = dy[:len(dx)]
	x = x[:len(dx)]
	if acc {
		for i, g := range dy {
			dx[i] += k1*g - k2 - k3*(x[i]-m)
		}
		return
	}
	for i, g := range dy {
		dx[i] = k1*g - k2 - k3*(x[i]-m)
	}
}

func addGo(dst, a, b []float32, relu bool) {
	b = b[:len(a)]
	dst = dst[:len(a)]
	if relu {
		for i, v := range a {
			dst[i] = max(v+b[i], 0)
		}
		return
	}
	for i, v := range a {
		dst[i] = v + b[i]
	}
}
