package engine

import (
	"fmt"
	"testing"

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
