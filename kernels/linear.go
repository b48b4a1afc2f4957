package kernels

import "fmt"

// LinearScratch is the number of floats a [Workspace] grows to for a
// [Workspace.Linear] call with m outputs and the given batch (0 for batch 1).
func LinearScratch(m, batch int) int {
	if batch <= 1 {
		return 0
	}
	return m * batch
}

// Linear computes dst[batch×M] = x[batch×K]·Wᵀ with the epilogue ep applied
// per output feature (Bias[m], Slope[m], ...), where wt = PackA(W, M, K, K)
// holds the M×K weights (PyTorch's Linear layout). Batch 1 is a direct
// matrix-vector product; larger batches use the Workspace's transposition
// scratch ([LinearScratch], grown on first use).
func (w *Workspace) Linear(dst, x []float32, batch int, wt *PackedA, ep *Epilogue) {
	ep.noResidual("Linear")
	m, k := wt.M, wt.K
	if batch <= 0 || len(x) < batch*k || len(dst) < batch*m {
		panic(fmt.Sprintf("kernels: Linear bad dims batch=%d x=%d dst=%d for %d×%d weights", batch, len(x), len(dst), m, k))
	}
	if batch == 1 {
		w.run(wt, bRows, x, 1, convGeo{}, nil, dst, 1, 1, ep)
		return
	}
	if n := LinearScratch(m, batch); len(w.tmp) < n {
		w.tmp = make([]float32, n)
	}
	t := w.tmp[:m*batch] // t[i*batch+b] = dst[b*m+i]
	if ep != nil && ep.Accumulate {
		for b := 0; b < batch; b++ {
			for i := 0; i < m; i++ {
				t[i*batch+b] = dst[b*m+i]
			}
		}
	}
	w.run(wt, bTrans, x, k, convGeo{}, nil, t, batch, batch, ep)
	for b := 0; b < batch; b++ {
		for i := 0; i < m; i++ {
			dst[b*m+i] = t[i*batch+b]
		}
	}
}
