package kernels

import "fmt"

// GemmStrided is [Workspace.Gemm] for a B whose rows may overlap: row k of
// B is b[k·ldb : k·ldb+n] for any ldb ≥ 1, also below n. It serves implicit
// im2col: with a channels-last image (C floats per pixel), the rows of
// b[(ky·W)·C:] with ldb = C are the k·C-float windows of consecutive
// pixels, so a stride-1 convolution's weight gradient reads its input in
// place instead of from a materialised im2col matrix.
func (w *Workspace) GemmStrided(c []float32, ldc int, a *PackedA, b []float32, ldb, n int, ep *Epilogue) {
	if n <= 0 {
		return
	}
	if ldb < 1 || ldc < n {
		panic(fmt.Sprintf("kernels: GemmStrided strides ldb=%d ldc=%d for n=%d", ldb, ldc, n))
	}
	if a.K > 0 && len(b) < (a.K-1)*ldb+n {
		panic(fmt.Sprintf("kernels: GemmStrided B has %d elements, need %d", len(b), (a.K-1)*ldb+n))
	}
	w.run(a, bRows, b, ldb, convGeo{}, nil, c, ldc, n, ep)
}
