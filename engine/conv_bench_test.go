package engine

import (
	"fmt"
	"testing"
	"time"

	"github.com/rmprune/rmprune/kernels"
)

// BenchmarkConvSplit times one 3×3 conv through a 1-worker and a 2-worker
// workspace driven by the pool (layer-parallel batch-1 execution).
func BenchmarkConvSplit(b *testing.B) {
	for _, c := range []int{16, 64} {
		s := kernels.ConvShape{C: c, H: 32, W: 32, OutC: c, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}
		w := make([]float32, c*c*9)
		x := make([]float32, c*32*32)
		y := make([]float32, c*32*32)
		pa := kernels.PackConv(w, s)
		for _, workers := range []int{1, 2} {
			b.Run(fmt.Sprintf("c%d/w%d", c, workers), func(b *testing.B) {
				p := NewPool(workers)
				defer p.Close()
				ws := kernels.NewWorkspace(workers, p.Run)
				ws.Reserve(s)
				for b.Loop() {
					ws.Conv2D(y, x, pa, s, nil)
				}
			})
		}
	}
}

func abs(m int) int { return max(m, -m) }

// BenchmarkLayerSplit times the MNIST demo's 3×3 layers on 1 worker and
// split over a 2-worker pool (layer-parallel batch 1) as direct convs and as
// Winograd F(2×2)/F(4×4), tile-vectorised where it splits by tile rows and
// channel-vectorised (F2c, F4c), on each kernel path (avx512, avx2); it
// reports the best call (the machine is shared):
//
//	go test -run XXX -bench LayerSplit ./engine
func BenchmarkLayerSplit(b *testing.B) {
	for _, isa := range kernels.ISAs() {
		if isa == "generic" {
			continue
		}
		b.Run(isa, func(b *testing.B) {
			defer func(old string) { kernels.UseISA(old) }(kernels.ISA())
			if err := kernels.UseISA(isa); err != nil {
				b.Fatal(err)
			}
			layerSplit(b)
		})
	}
}

func layerSplit(b *testing.B) {
	for _, c := range []struct{ c, hw int }{{16, 28}, {32, 14}, {64, 7}} {
		s := kernels.ConvShape{C: c.c, H: c.hw, W: c.hw, OutC: c.c, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}
		w := make([]float32, c.c*c.c*9)
		for i := range w {
			w[i] = float32(i%7) - 3
		}
		x := make([]float32, c.c*c.hw*c.hw)
		y := make([]float32, c.c*c.hw*c.hw)
		ep := &kernels.Epilogue{Bias: make([]float32, c.c), Act: kernels.ActReLU}
		for _, workers := range []int{1, 2} {
			p := NewPool(workers)
			ws := kernels.NewWorkspace(workers, p.RunShared)
			ws.Reserve(s)
			pa := kernels.PackConv(w, s)
			for _, m := range []int{0, 2, 4, -2, -4} { // negative: channel-vectorised
				if m > 0 && workers > 1 && !kernels.WinogradRowSplit(s, m, 1, workers) {
					continue
				}
				var ww *kernels.WinogradWeights
				switch {
				case m > 0:
					ww = kernels.PackWinograd(w, s, m)
				case m < 0:
					ww = kernels.PackWinogradC(w, s, -m)
				}
				if m != 0 {
					ws.ReserveWinograd(s, abs(m), 1)
				}
				name := fmt.Sprintf("F%d", m)
				if m < 0 {
					name = fmt.Sprintf("F%dc", -m)
				}
				b.Run(fmt.Sprintf("c%d_%d/w%d/%s", c.c, c.hw, workers, name), func(b *testing.B) {
					best := time.Duration(1 << 62)
					for b.Loop() {
						t0 := time.Now()
						if m == 0 {
							ws.Conv2D(y, x, pa, s, ep)
						} else {
							ws.Winograd(y, x, 1, ww, s, ep)
						}
						best = min(best, time.Since(t0))
					}
					b.ReportMetric(float64(best.Nanoseconds())/1e3, "best-µs")
				})
			}
			p.Close()
		}
	}
}
