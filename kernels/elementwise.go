package kernels

import "fmt"

// Apply applies the epilogue in place to x, a rows×n row-major block whose
// row r is output channel r (bias, activation, clamp; Accumulate is
// ignored). It serves standalone activations, e.g. after a residual [Add].
func (e *Epilogue) Apply(x []float32, rows, n int) {
	e.noResidual("Epilogue.Apply")
	if rows <= 0 || n <= 0 {
		return
	}
	if len(x) < rows*n {
		panic(fmt.Sprintf("kernels: Epilogue.Apply has %d elements, need %d", len(x), rows*n))
	}
	f := e.flags(rows) &^ flagAcc
	if f == 0 {
		return
	}
	bias, slope, lo, hi := epPtrs(e, f)
	for r := 0; r < rows; r++ {
		epilogueRow(x[r*n:(r+1)*n], r, f, bias, slope, lo, hi)
	}
}

// Add computes dst[i] += src[i] for i < len(dst) (residual add).
func Add(dst, src []float32) {
	src = src[:len(dst)]
	for i, v := range src {
		dst[i] += v
	}
}

// rowsJob holds the parameters of the current [Workspace.ScaleRows] call.
type rowsJob struct {
	dst, src []float32
	hw       int
	rows     []int32
	coef     []float32
	flags    int
	ep       Epilogue
}

// ScaleRows computes, for o < len(rows), the hw floats of dst row o as
//
//	dst[o] = ep(coef[o]·src[rows[o]] (+ dst[o] with ep.Accumulate))
//
// (row r of a slice is its floats [r·hw, (r+1)·hw)), split by rows over the
// workers: RM's Dirac rows, output channels that copy an input channel. ep
// may be nil; it takes no Residual.
func (w *Workspace) ScaleRows(dst, src []float32, hw int, rows []int32, coef []float32, ep *Epilogue) {
	ep.noResidual("ScaleRows")
	m := len(rows)
	if m == 0 || hw <= 0 {
		return
	}
	if len(coef) < m || len(dst) < m*hw {
		panic(fmt.Sprintf("kernels: ScaleRows has %d coefficients and %d outputs for %d rows of %d", len(coef), len(dst), m, hw))
	}
	for _, r := range rows {
		if r < 0 || (int(r)+1)*hw > len(src) {
			panic(fmt.Sprintf("kernels: ScaleRows source row %d outside %d floats", r, len(src)))
		}
	}
	j := &w.rows
	*j = rowsJob{dst: dst, src: src, hw: hw, rows: rows, coef: coef, flags: ep.flags(m)}
	if ep != nil {
		j.ep = *ep
	}
	if w.par == nil || m == 1 {
		w.rowsTasks(0, 0, m)
	} else {
		w.par(m, w.rowsTask)
	}
	*j = rowsJob{}
}

// rowsTasks computes rows [lo, hi) of the current ScaleRows job: with a
// bias and ReLU at most, by ScaleShift; otherwise whole vectors with the
// 1-row microkernel (one step of K) and the tail in Go.
func (w *Workspace) rowsTasks(worker, lo, hi int) {
	j := &w.rows
	ks := active
	nr := ks.nr
	bias0, slope0, lo0, hi0 := epPtrs(&j.ep, j.flags)
	// Bias and ReLU only (RM's Dirac rows after BN folding): one
	// vectorised pass per row instead of a microkernel call per strip.
	simple := j.flags&^(flagBias|flagReLU) == 0
	for o := lo; o < hi; o++ {
		d := j.dst[o*j.hw : (o+1)*j.hw]
		s := j.src[int(j.rows[o])*j.hw:]
		s = s[:j.hw]
		a := &j.coef[o]
		if simple {
			var b float32
			if j.flags&flagBias != 0 {
				b = j.ep.Bias[o]
			}
			ScaleShift(d, s, *a, b, j.flags&flagReLU != 0)
			continue
		}
		bias, slope, plo, phi := rowPtr(bias0, o), rowPtr(slope0, o), rowPtr(lo0, o), rowPtr(hi0, o)
		x := 0
		for ; x+nr <= j.hw; x += nr {
			ks.kern[0](1, a, &s[x], &d[x], nr, j.flags, bias, slope, plo, phi)
		}
		if x < j.hw {
			t, c := d[x:], *a
			if j.flags&flagAcc != 0 {
				for i, v := range s[x:] {
					t[i] += c * v
				}
			} else {
				for i, v := range s[x:] {
					t[i] = c * v
				}
			}
			epilogueRow(t, o, j.flags, bias0, slope0, lo0, hi0)
		}
	}
}
