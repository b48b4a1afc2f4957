package train

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/rmprune/rmprune/nn"
)

// TestWeightGradShift compares the in-place (GemmStrided) weight gradient of
// stride-1 convs with the im2col path, itself checked against finite
// differences (TestGradients), over several image chunks, kernel sizes and
// paddings, and 1 and 2 workers.
func TestWeightGradShift(t *testing.T) {
	for _, tc := range []struct {
		cin, cout, h, k, pad, n int
	}{
		{4, 8, 16, 3, 1, 7},   // chunks of 6 images: 6 + 1 (fewer than 4 channels take im2col)
		{16, 16, 14, 3, 1, 9}, // chunks of 8 images, split by the workers
		{4, 5, 28, 5, 2, 3},
		{6, 7, 14, 1, 0, 3},
		{5, 6, 28, 3, 1, 3},   // one image per chunk
		{32, 8, 14, 3, 1, 3},  // 96 columns per row ky: one GEMM per ky (not stacked)
		{16, 24, 14, 3, 1, 5}, // stacked rows ky, as ResNet-20's first stage
		{8, 8, 28, 3, 0, 3},   // no padding: the grid keeps its own borders
		{16, 8, 13, 3, 1, 5},  // shared padding: 14×14 grid
	} {
		for _, threads := range []int{1, 2} {
			t.Run(fmt.Sprintf("c%d-o%d-%dx%d-k%d-p%d-n%d/threads=%d", tc.cin, tc.cout, tc.h, tc.h, tc.k, tc.pad, tc.n, threads), func(t *testing.T) {
				grads := func(noShift bool) (map[string][]float32, bool) {
					b := newGraphBuilder(tc.cin, tc.h, tc.h, 9)
					b.conv("conv", "input", tc.cin, tc.cout, tc.k, 1, tc.pad, 1, true)
					in := nn.Shape{C: tc.cin, H: tc.h, W: tc.h}
					net, err := newNet(b.g, in, NetOptions{MaxBatch: tc.n, Threads: threads, InputGrad: true}, noShift)
					if err != nil {
						t.Fatal(err)
					}
					defer net.Close()
					rng := rand.New(rand.NewPCG(1, 1))
					x := make([]float32, tc.n*in.Numel())
					for i := range x {
						x[i] = float32(rng.NormFloat64())
					}
					y := net.Forward(x, tc.n, true)
					g := make([]float32, len(y))
					for i := range g {
						g[i] = float32(rng.NormFloat64())
					}
					net.setOutputGrad(g)
					net.Backward()
					out := map[string][]float32{}
					for _, p := range net.Params() {
						out[p.Name] = append([]float32(nil), p.Grad...)
					}
					return out, net.layers[1].impl.(*convOp).shift
				}
				want, _ := grads(true)
				got, shifted := grads(false)
				if !shifted {
					t.Fatalf("the conv does not take the shift path")
				}
				for name, w := range want {
					for i := range w {
						if d := math.Abs(float64(got[name][i] - w[i])); d > 1e-4*(1+math.Abs(float64(w[i]))) {
							t.Fatalf("%s[%d]: got %g; want %g (im2col path)", name, i, got[name][i], w[i])
						}
					}
				}
			})
		}
	}
}
