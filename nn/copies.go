package nn

// RM leaves exact copies inside a plain net's convolutions: Dirac rows (an
// output channel that is one input channel, scaled, read at the kernel's
// centre tap only: the reserved channels) and centre-only columns (an input
// channel that the other rows read only through the centre tap: the merged
// identity or 1×1 projection). Both the engine and the ONNX export find them
// with the functions below and compute them as copies instead of dense MACs.

// DiracRows returns, for each output row o of conv weights w ([m][c][k][k],
// one group), the input channel the row copies and the coefficient, or
// src[o] = −1 when the row is not a Dirac row: a Dirac row has exactly one
// non-zero weight, at the centre tap.
func DiracRows(w []float32, m, c, k int) (src []int, coef []float32) {
	kk := k * k
	centre := (k / 2) * (k + 1)
	src, coef = make([]int, m), make([]float32, m)
	for o := range m {
		src[o] = -1
		s, a := -1, float32(0)
		for i, v := range w[o*c*kk : (o+1)*c*kk] {
			if v == 0 {
				continue
			}
			if s >= 0 || i%kk != centre {
				s = -1
				break
			}
			s, a = i/kk, v
		}
		if s >= 0 {
			src[o], coef[o] = s, a
		}
	}
	return src, coef
}

// CentreOnly reports, for each input channel of conv weights w ([m][c][k][k],
// one group), whether every output row o with skip[o] false reads it only
// through the centre tap (an all-zero column counts). skip may be nil.
func CentreOnly(w []float32, m, c, k int, skip []bool) []bool {
	kk := k * k
	centre := (k / 2) * (k + 1)
	only := make([]bool, c)
	for i := range only {
		only[i] = true
	}
	for o := range m {
		if skip != nil && skip[o] {
			continue
		}
		row := w[o*c*kk : (o+1)*c*kk]
		for i, v := range row {
			if v != 0 && i%kk != centre {
				only[i/kk] = false
			}
		}
	}
	return only
}

// CopyConv reports whether a conv can hold Dirac rows and centre-only
// columns in the sense above: one group, a square odd kernel, padding k/2
// (so the centre tap of every output pixel falls inside the input).
func CopyConv(n *Node) bool {
	return n.Op == OpConv && n.G() == 1 && n.Kernel%2 == 1 && n.Pad == n.Kernel/2 && n.Stride >= 1
}
