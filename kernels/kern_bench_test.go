package kernels

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkMicrokernel runs one full-tile microkernel on cache-resident
// panels and reports the best per-call rate.
func BenchmarkMicrokernel(b *testing.B) {
	benchISAs(b, func(b *testing.B) {
		s := active
		for _, k := range []int{64, 256, 576} {
			b.Run(fmt.Sprintf("k%d", k), func(b *testing.B) {
				a := make([]float32, k*s.mr)
				bb := make([]float32, k*s.nr)
				c := make([]float32, s.mr*s.nr)
				best := time.Duration(1 << 62)
				for b.Loop() {
					t := time.Now()
					for range 16 {
						s.kern[s.mr-1](k, &a[0], &bb[0], &c[0], s.nr, 0, nil, nil, nil, nil)
					}
					best = min(best, time.Since(t))
				}
				b.ReportMetric(16*2*float64(k*s.mr*s.nr)/best.Seconds()/1e9, "GFLOP/s")
			})
		}
	})
}
