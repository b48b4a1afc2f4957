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
