package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// BenchmarkWinograd compares, single-threaded on the active path, Conv2D
// (one call per image) with Winograd F(2×2) and F(4×4) on the whole batch.
// GFLOP/s count direct-conv flops (2·OutC·C·9·OutH·OutW·n) for all three,
// so the rates compare; the best call is reported (the machine is shared).
func BenchmarkWinograd(b *testing.B) {
	cases := []struct {
		s ConvShape
		n int
	}{
		{sq3(16, 32, 32, 16, 1), 1}, {sq3(32, 16, 16, 32, 1), 1}, {sq3(64, 8, 8, 64, 1), 1},
		{sq3(16, 32, 32, 16, 1), 16}, {sq3(32, 16, 16, 32, 1), 16}, {sq3(64, 8, 8, 64, 1), 16},
		{sq3(16, 28, 28, 16, 1), 1}, {sq3(32, 14, 14, 32, 1), 1}, {sq3(64, 7, 7, 64, 1), 1}, // MNIST sizes
		{sq3(64, 56, 56, 64, 1), 1}, {sq3(128, 28, 28, 128, 1), 1}, {sq3(256, 14, 14, 256, 1), 1},
	}
	for _, c := range cases {
		s, n := c.s, c.n
		rng := rand.New(rand.NewPCG(1, 1))
		src := randSlice(rng, n*s.C*s.H*s.W)
		w := randSlice(rng, s.OutC*s.K())
		img := s.OutC * s.OutH() * s.OutW()
		dst := make([]float32, n*img)
		ep := &Epilogue{Bias: randSlice(rng, s.OutC), Act: ActReLU}
		flops := 2 * float64(s.OutC*s.K()*s.OutH()*s.OutW()*n)
		ws := NewWorkspace(1, nil)
		pc := PackConv(w, s)
		for _, m := range []int{0, 2, 4} {
			name := fmt.Sprintf("c%d_%dx%d_n%d/conv", s.C, s.H, s.W, n)
			var ww *WinogradWeights
			if m > 0 {
				name = fmt.Sprintf("c%d_%dx%d_n%d/F%d", s.C, s.H, s.W, n, m)
				ww = PackWinograd(w, s, m)
			}
			b.Run(name, func(b *testing.B) {
				best := time.Duration(1 << 62)
				for b.Loop() {
					t := time.Now()
					if m == 0 {
						for i := 0; i < n; i++ {
							ws.Conv2D(dst[i*img:], src[i*s.C*s.H*s.W:], pc, s, ep)
						}
					} else {
						ws.Winograd(dst, src, n, ww, s, ep)
					}
					best = min(best, time.Since(t))
				}
				b.ReportMetric(flops/best.Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}
