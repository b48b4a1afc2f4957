package bench

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/rmprune/rmprune/kernels"
)

// GemmShape is one single-thread GEMM measurement: C[M×N] = A[M×K]·B[K×N].
type GemmShape struct {
	Name    string  `json:"name"`
	M       int     `json:"m"`
	K       int     `json:"k"`
	N       int     `json:"n"`
	GFLOPS  float64 `json:"gflops"`
	PctPeak float64 `json:"pct_peak"`
}

// KernelReport is `rmprune bench --kernels`.
type KernelReport struct {
	CPU       string      `json:"cpu"`
	ISA       string      `json:"isa"`
	PeakGFLOP float64     `json:"peak_gflops"` // single core, register-resident FMA loop
	Gemm      []GemmShape `json:"gemm"`
}

// ConvShapes are GEMM problems shaped like the convolutions that matter here:
// a CIFAR ResNet stage-1 3×3 conv (M=64 outputs, K=64·9, N=32·32) and pruned,
// irregular channel counts.
var ConvShapes = []GemmShape{
	{Name: "conv3x3 64→64 @32×32", M: 64, K: 576, N: 1024},
	{Name: "pruned 37 outputs, K=333", M: 37, K: 333, N: 1024},
	{Name: "conv3x3 16→16 @32×32", M: 16, K: 144, N: 1024},
	{Name: "pruned 113 outputs, K=1017 @8×8", M: 113, K: 1017, N: 64},
}

// Kernels measures the FMA peak and single-thread GEMM throughput.
func Kernels(ctx context.Context) (*KernelReport, error) {
	r := &KernelReport{CPU: CPUModel(), ISA: kernels.ISA(), PeakGFLOP: kernels.Peak(500 * time.Millisecond)}
	ws := kernels.NewWorkspace(1, nil)
	rng := rand.New(rand.NewPCG(3, 4))
	for _, s := range ConvShapes {
		a := make([]float32, s.M*s.K)
		b := make([]float32, s.K*s.N)
		c := make([]float32, s.M*s.N)
		for i := range a {
			a[i] = float32(rng.NormFloat64())
		}
		for i := range b {
			b[i] = float32(rng.NormFloat64())
		}
		pa := kernels.PackA(a, s.M, s.K, s.K)
		st, err := Time(ctx, 20, 100000, 300*time.Millisecond, func() error {
			ws.Gemm(c, s.N, pa, b, s.N, s.N, nil)
			return nil
		})
		if err != nil {
			return nil, err
		}
		s.GFLOPS = 2 * float64(s.M*s.K*s.N) / (st.MedianMs / 1e3) / 1e9
		if r.PeakGFLOP > 0 {
			s.PctPeak = 100 * s.GFLOPS / r.PeakGFLOP
		}
		r.Gemm = append(r.Gemm, s)
	}
	return r, nil
}
