package engine_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/rmprune/rmprune/engine"
	"github.com/rmprune/rmprune/modelio"
	"github.com/rmprune/rmprune/nn"
	"github.com/rmprune/rmprune/rm"
)

// BenchmarkDemoLayers profiles the MNIST demo ResNet-20 and its RMNet per
// step (mean and fastest run, which on a shared machine shows the code's
// speed) and logs the table:
//
//	go test -run XXX -bench DemoLayers -v ./engine
func BenchmarkDemoLayers(b *testing.B) {
	g, err := modelio.Load(filepath.Join("..", "demo", "resnet20-mnist.safetensors"), modelio.Options{})
	if err != nil {
		b.Skip(err)
	}
	res, err := rm.Convert(g, rm.Options{})
	if err != nil {
		b.Fatal(err)
	}
	shape := g.InputShape()
	for _, m := range []struct {
		form string
		g    *nn.Graph
	}{{"resnet", g}, {"rmnet", res.Graph}} {
		for _, tb := range [][2]int{{1, 1}, {2, 1}, {2, 32}} {
			threads, batch := tb[0], tb[1]
			b.Run(fmt.Sprintf("%s/t%d/b%d", m.form, threads, batch), func(b *testing.B) {
				e, err := engine.Compile(m.g, engine.Options{Threads: threads, MaxBatch: batch, Shape: shape})
				if err != nil {
					b.Fatal(err)
				}
				defer e.Close()
				x := rm.RandomInput(batch, shape, 1).D
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
	}
}
