package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestGemmStrided compares GemmStrided on overlapping B rows with a plain
// triple loop, for widths around the register tile and K over one block,
// single- and multi-worker, with and without accumulation.
func TestGemmStrided(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, tc := range []struct{ m, k, n, ldb int }{
		{1, 1, 1, 1}, {8, 40, 48, 16}, {16, 900, 48, 16}, {9, 70, 33, 3}, {32, 500, 96, 32}, {5, 17, 64, 64}, {16, 390, 100, 7},
	} {
		for _, workers := range []int{1, 3} {
			for _, acc := range []bool{false, true} {
				t.Run(fmt.Sprintf("%dx%dx%d_ldb%d_w%d_acc%v", tc.m, tc.k, tc.n, tc.ldb, workers, acc), func(t *testing.T) {
					a := randSlice(rng, tc.m*tc.k)
					b := randSlice(rng, (tc.k-1)*tc.ldb+tc.n)
					ldc := tc.n + 3
					c := randSlice(rng, (tc.m-1)*ldc+tc.n+5) // guard values past the end
					orig := append([]float32(nil), c...)
					var par ParallelFunc
					if workers > 1 {
						par = func(n int, fn func(worker, lo, hi int)) {
							for w := 0; w < workers; w++ {
								if lo, hi := n*w/workers, n*(w+1)/workers; lo < hi {
									fn(w, lo, hi)
								}
							}
						}
					}
					var ep *Epilogue
					if acc {
						ep = &Epilogue{Accumulate: true}
					}
					NewWorkspace(workers, par).GemmStrided(c, ldc, PackA(a, tc.m, tc.k, tc.k), b, tc.ldb, tc.n, ep)
					for i := 0; i < tc.m; i++ {
						for j := 0; j < ldc && i*ldc+j < len(c); j++ {
							want := float64(orig[i*ldc+j])
							if j < tc.n {
								if !acc {
									want = 0
								}
								for q := 0; q < tc.k; q++ {
									want += float64(a[i*tc.k+q]) * float64(b[q*tc.ldb+j])
								}
							}
							if got := float64(c[i*ldc+j]); math.Abs(got-want) > 1e-4*(1+math.Abs(want))*math.Sqrt(float64(tc.k)) {
								t.Fatalf("c[%d][%d]: got %g; want %g", i, j, got, want)
							}
						}
					}
					for x := (tc.m-1)*ldc + tc.n; x < len(c); x++ {
						if c[x] != orig[x] {
							t.Fatalf("guard c[%d] changed: got %g; want %g", x, c[x], orig[x])
						}
					}
				})
			}
		}
	}
}
