package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// benchISAs runs f for each available kernel path as a sub-benchmark.
func benchISAs(b *testing.B, f func(b *testing.B)) {
	defer func(s *kernelSet) { active = s }(active)
	for _, name := range ISAs() {
		if err := UseISA(name); err != nil {
			b.Fatal(err)
		}
		b.Run(name, f)
	}
}

// BenchmarkPeak measures the register-resident FMA loop (GFLOP/s per core).
func BenchmarkPeak(b *testing.B) {
	benchISAs(b, func(b *testing.B) {
		s := active
		if s.peak == nil {
			b.Skip("no FMA loop for the generic path")
		}
		const n = 1 << 14
		best := time.Duration(1 << 62)
		for b.Loop() {
			t := time.Now()
			s.peak(n)
			best = min(best, time.Since(t))
		}
		// Best call: the machine is shared, and the peak is what one core can do.
		b.ReportMetric(n*float64(s.peakFlops)/best.Seconds()/1e9, "GFLOP/s")
	})
}

var gemmShapes = []gemmCase{
	{64, 1024, 576}, // 3×3 conv, 64 channels, 32×32
	{37, 1024, 333}, // pruned: 37 out, 37 in
	{16, 1024, 144}, // ResNet-56 stage 1
	{32, 256, 288},  // ResNet-56 stage 2
	{64, 64, 576},   // ResNet-56 stage 3
}

// BenchmarkGemm measures single-thread GEMM throughput on conv-shaped problems.
func BenchmarkGemm(b *testing.B) {
	benchISAs(b, func(b *testing.B) {
		for _, sh := range gemmShapes {
			b.Run(fmt.Sprintf("M%d_K%d_N%d", sh.m, sh.k, sh.n), func(b *testing.B) {
				rng := rand.New(rand.NewPCG(1, 1))
				a := randSlice(rng, sh.m*sh.k)
				bb := randSlice(rng, sh.k*sh.n)
				c := make([]float32, sh.m*sh.n)
				pa := PackA(a, sh.m, sh.k, sh.k)
				ws := NewWorkspace(1, nil)
				ep := &Epilogue{Bias: randSlice(rng, sh.m), Act: ActReLU}
				for b.Loop() {
					ws.Gemm(c, sh.n, pa, bb, sh.n, sh.n, ep)
				}
				flops := 2 * float64(sh.m*sh.n*sh.k)
				b.ReportMetric(float64(b.N)*flops/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	})
}

// BenchmarkGemmVsPeak interleaves the FMA peak loop of the active path with
// single-thread GEMM calls of the same flop count and reports the best
// (least disturbed) rate of each and their ratio, which stays meaningful on
// a machine shared with other work.
func BenchmarkGemmVsPeak(b *testing.B) {
	benchISAs(b, func(b *testing.B) {
		s := active
		if s.peak == nil {
			b.Skip("no FMA loop for the generic path")
		}
		for _, sh := range gemmShapes {
			b.Run(fmt.Sprintf("M%d_K%d_N%d", sh.m, sh.k, sh.n), func(b *testing.B) {
				rng := rand.New(rand.NewPCG(1, 1))
				a := randSlice(rng, sh.m*sh.k)
				bb := randSlice(rng, sh.k*sh.n)
				c := make([]float32, sh.m*sh.n)
				pa := PackA(a, sh.m, sh.k, sh.k)
				ws := NewWorkspace(1, nil)
				ep := &Epilogue{Bias: randSlice(rng, sh.m), Act: ActReLU}
				flops := 2 * float64(sh.m*sh.n*sh.k)
				np := int(flops) / s.peakFlops
				bestG, bestP := time.Duration(1<<62), time.Duration(1<<62)
				for b.Loop() {
					t0 := time.Now()
					s.peak(np)
					t1 := time.Now()
					ws.Gemm(c, sh.n, pa, bb, sh.n, sh.n, ep)
					t2 := time.Now()
					bestP = min(bestP, t1.Sub(t0))
					bestG = min(bestG, t2.Sub(t1))
				}
				g := flops / bestG.Seconds() / 1e9
				p := float64(np*s.peakFlops) / bestP.Seconds() / 1e9
				b.ReportMetric(g, "GFLOP/s")
				b.ReportMetric(p, "peakGFLOP/s")
				b.ReportMetric(100*g/p, "%peak")
			})
		}
	})
}
