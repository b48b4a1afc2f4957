package train

import "math"

// The per-channel elementwise passes of BatchNorm, ReLU, add (and masks):
// plain Go written so that the compiler drops the bounds checks, with eight
// independent float32 accumulators per reduction (a single accumulator
// makes a reduction wait on the add latency for every element). Partial sums
// cover runs of at most sumRun elements and are added in float64, which
// keeps the rounding error of long sums small.

const sumRun = 64

// sumSq returns Σp and Σp².
func sumSq(p []float32) (s, ss float64) {
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

// sumDot returns Σdy and Σdy·(x−m) (BatchNorm backward's reductions).
func sumDot(dy, x []float32, m float32) (s, sx float64) {
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

// gateSumDot gates dy in place by a ReLU's output y (dy = 0 where y ≤ 0)
// and returns the gated Σdy and Σdy·(x−m).
func gateSumDot(dy, y, x []float32, m float32) (s, sx float64) {
	y = y[:len(dy)]
	x = x[:len(dy)]
	for i := 0; i < len(dy); i += 8 * sumRun {
		e := min(i+8*sumRun, len(dy))
		gate(dy[i:e], dy[i:e], y[i:e])
		a, b := sumDot(dy[i:e], x[i:e], m)
		s += a
		sx += b
	}
	return s, sx
}

// gate writes dst[i] = g[i] where y[i] > 0, else 0 (the gradient through
// a ReLU whose output is y), without branches; dst may be g.
func gate(dst, g, y []float32) {
	g = g[:len(dst)]
	y = y[:len(dst)]
	for i, v := range y {
		dst[i] = reluGrad(g[i], v)
	}
}

// gate2 is gate writing the gated gradient to dst and also to (or, with
// acc, adding it into) dst2.
func gate2(dst, dst2, g, y []float32, acc bool) {
	g = g[:len(dst)]
	y = y[:len(dst)]
	dst2 = dst2[:len(dst)]
	if acc {
		for i, v := range y {
			d := reluGrad(g[i], v)
			dst[i] = d
			dst2[i] += d
		}
		return
	}
	for i, v := range y {
		d := reluGrad(g[i], v)
		dst[i] = d
		dst2[i] = d
	}
}

// scaleShift writes dst = src·a + b, through a ReLU when relu is set.
func scaleShift(dst, src []float32, a, b float32, relu bool) {
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

// bnInputGrad writes (or, with acc, adds) dx = k1·dy − k2 − k3·(x−m).
func bnInputGrad(dx, dy, x []float32, k1, k2, k3, m float32, acc bool) {
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

// addTo writes dst = a + b, through a ReLU when relu is set.
func addTo(dst, a, b []float32, relu bool) {
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

// reluGrad returns g where the ReLU output y (≥ 0) is positive, else 0,
// without a branch.
func reluGrad(g, y float32) float32 {
	b := math.Float32bits(y)
	m := uint32(int32(b|-b) >> 31)
	return math.Float32frombits(math.Float32bits(g) & m)
}
