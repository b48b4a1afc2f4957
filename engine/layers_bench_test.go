package engine_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/rmprune/rmprune/engine"
)

// BenchmarkDemoLayers profiles the MNIST demo ResNet-20 and its RMNet per
// step (mean and fastest run, which on a shared machine shows the code's
// speed) and logs the table:
//
//	go test -run XXX -bench DemoLayers -v ./engine
//
// (sub-benchmarks resnet20-mnist/FORM/tT/bB, as BenchmarkDemo's).
func BenchmarkDemoLayers(b *testing.B) {
	demoCases(b, []string{"resnet20-mnist", "resnet20-fashion-mnist"}, func(b *testing.B, e *engine.Engine, x []float32, batch int) {
		for range 20 {
			e.Run(x, batch)
		}
		e.Profile = true
		best := time.Duration(1 << 62)
		for b.Loop() {
			t0 := time.Now()
			e.Run(x, batch)
			best = min(best, time.Since(t0))
		}
		b.ReportMetric(float64(batch)/best.Seconds(), "best-img/s")
		var sum, sumBest float64
		out := fmt.Sprintf("%-40s %9s %9s  %s\n", "step", "mean ms", "best ms", "algo")
		for _, l := range e.LayerTimes() {
			out += fmt.Sprintf("%-40s %9.4f %9.4f  %s\n", l.Name, l.Ms, l.BestMs, l.Algo)
			sum += l.Ms
			sumBest += l.BestMs
		}
		b.Logf("best run %.4f ms; sum of step means %.4f ms, of step bests %.4f ms\n%s", best.Seconds()*1e3, sum, sumBest, out)
	})
}
