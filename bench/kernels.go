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
	Conv      []ConvAlgos `json:"conv"`
}

// ConvAlgos is one single-thread 3×3 stride-1 conv (pad 1, one image) timed
// as direct convolution and as Winograd F(2×2,3×3) and F(4×4,3×3), in
// GFLOP/s counted as direct convolution (2·OutC·C·9·H·W per image), so the
// three compare.
type ConvAlgos struct {
	Name    string  `json:"name"`
	C       int     `json:"c"`
	HW      int     `json:"hw"`
	Direct  float64 `json:"direct_gflops"`
	F2      float64 `json:"winograd_f2_gflops"`
	F4      float64 `json:"winograd_f4_gflops"`
	Fastest string  `json:"fastest"`
}

// WinogradShapes are the conv layers of CIFAR ResNets and ResNet-18 at 224.
var WinogradShapes = []ConvAlgos{
	{Name: "CIFAR stage 1", C: 16, HW: 32},
	{Name: "CIFAR stage 2", C: 32, HW: 16},
	{Name: "CIFAR stage 3", C: 64, HW: 8},
	{Name: "ResNet-18 stage 1", C: 64, HW: 56},
	{Name: "ResNet-18 stage 3", C: 256, HW: 14},
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

// Kernels measures the FMA peak, single-thread GEMM throughput, and direct
// vs Winograd convolution on typical layers.
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
	for _, c := range WinogradShapes {
		s := kernels.ConvShape{C: c.C, H: c.HW, W: c.HW, OutC: c.C, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}
		w := make([]float32, c.C*s.K())
		src := make([]float32, c.C*c.HW*c.HW)
		dst := make([]float32, c.C*c.HW*c.HW)
		for i := range w {
			w[i] = float32(rng.NormFloat64())
		}
		for i := range src {
			src[i] = float32(rng.NormFloat64())
		}
		flops := 2 * float64(c.C*s.K()*c.HW*c.HW)
		gflops := func(f func()) (float64, error) {
			st, err := Time(ctx, 20, 100000, 200*time.Millisecond, func() error { f(); return nil })
			return flops / (st.MedianMs / 1e3) / 1e9, err
		}
		pw := kernels.PackConv(w, s)
		var err error
		if c.Direct, err = gflops(func() { ws.Conv2D(dst, src, pw, s, nil) }); err != nil {
			return nil, err
		}
		w2, w4 := kernels.PackWinograd(w, s, 2), kernels.PackWinograd(w, s, 4)
		if c.F2, err = gflops(func() { ws.Winograd(dst, src, 1, w2, s, nil) }); err != nil {
			return nil, err
		}
		if c.F4, err = gflops(func() { ws.Winograd(dst, src, 1, w4, s, nil) }); err != nil {
			return nil, err
		}
		c.Fastest = "direct"
		if best := max(c.Direct, c.F2, c.F4); best == c.F2 {
			c.Fastest = "winograd F2"
		} else if best == c.F4 {
			c.Fastest = "winograd F4"
		}
		r.Conv = append(r.Conv, c)
	}
	return r, nil
}
