package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

var convBenchShapes = []ConvShape{
	{C: 64, H: 32, W: 32, OutC: 64, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1},
	{C: 37, H: 32, W: 32, OutC: 37, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1},
	{C: 16, H: 32, W: 32, OutC: 16, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1},
	{C: 32, H: 16, W: 16, OutC: 32, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1},
	{C: 64, H: 8, W: 8, OutC: 64, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1},
	// MNIST-sized maps: rows that are not a multiple of the vector width.
	{C: 16, H: 28, W: 28, OutC: 16, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1},
	{C: 32, H: 14, W: 14, OutC: 32, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1},
	{C: 64, H: 7, W: 7, OutC: 64, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1},
	{C: 16, H: 28, W: 28, OutC: 32, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1},
	{C: 32, H: 32, W: 32, OutC: 64, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1},
	{C: 64, H: 32, W: 32, OutC: 64, KH: 1, KW: 1, StrideH: 1, StrideW: 1},
	{C: 16, H: 32, W: 32, OutC: 32, KH: 1, KW: 1, StrideH: 2, StrideW: 2},
}

// BenchmarkConv2D reports the best single-thread rate of Conv2D (flops of a
// direct convolution) and of the FMA peak loop interleaved with it.
func BenchmarkConv2D(b *testing.B) {
	benchISAs(b, func(b *testing.B) {
		s := active
		for _, sh := range convBenchShapes {
			b.Run(fmt.Sprintf("c%d_%dx%d_o%d_k%d_s%d", sh.C, sh.H, sh.W, sh.OutC, sh.KH, sh.StrideH), func(b *testing.B) {
				rng := rand.New(rand.NewPCG(1, 1))
				src := randSlice(rng, sh.C*sh.H*sh.W)
				pw := PackConv(randSlice(rng, sh.OutC*sh.K()), sh)
				dst := make([]float32, sh.OutC*sh.OutH()*sh.OutW())
				ws := NewWorkspace(1, nil)
				ep := &Epilogue{Bias: randSlice(rng, sh.OutC), Act: ActReLU}
				flops := 2 * float64(sh.OutC*sh.K()*sh.OutH()*sh.OutW())
				np := 0
				if s.peak != nil {
					np = int(flops) / s.peakFlops
				}
				bestC, bestP := time.Duration(1<<62), time.Duration(1<<62)
				for b.Loop() {
					t0 := time.Now()
					if np > 0 {
						s.peak(np)
					}
					t1 := time.Now()
					ws.Conv2D(dst, src, pw, sh, ep)
					t2 := time.Now()
					bestP = min(bestP, t1.Sub(t0))
					bestC = min(bestC, t2.Sub(t1))
				}
				g := flops / bestC.Seconds() / 1e9
				b.ReportMetric(g, "GFLOP/s")
				if np > 0 {
					p := float64(np*s.peakFlops) / bestP.Seconds() / 1e9
					b.ReportMetric(100*g/p, "%peak")
				}
			})
		}
	})
}

// BenchmarkDepthwise3x3 reports the single-thread rate of the (pure Go)
// depthwise conv on MobileNetV2-like shapes.
func BenchmarkDepthwise3x3(b *testing.B) {
	for _, sh := range []struct{ c, hw, s int }{{96, 32, 1}, {144, 16, 2}, {384, 8, 1}} {
		b.Run(fmt.Sprintf("c%d_%dx%d_s%d", sh.c, sh.hw, sh.hw, sh.s), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 1))
			src := randSlice(rng, sh.c*sh.hw*sh.hw)
			w := randSlice(rng, 9*sh.c)
			oh, ow := DepthwiseOut(sh.hw, sh.hw, sh.s)
			dst := make([]float32, sh.c*oh*ow)
			ws := NewWorkspace(1, nil)
			ep := &Epilogue{Bias: randSlice(rng, sh.c), Act: ActReLU6}
			best := time.Duration(1 << 62)
			for b.Loop() {
				t := time.Now()
				ws.Depthwise3x3(dst, src, w, sh.c, sh.hw, sh.hw, sh.s, ep)
				best = min(best, time.Since(t))
			}
			b.ReportMetric(2*9*float64(sh.c*oh*ow)/best.Seconds()/1e9, "GFLOP/s")
		})
	}
}
