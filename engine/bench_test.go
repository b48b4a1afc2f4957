package engine_test

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/rmprune/rmprune/engine"
	"github.com/rmprune/rmprune/modelio"
	"github.com/rmprune/rmprune/nn"
	"github.com/rmprune/rmprune/rm"
)

// BenchmarkResNet56 times CIFAR ResNet-56 and its RMNet (3×32×32) per batch:
//
//	go test -run XXX -bench ResNet56 ./engine
func BenchmarkResNet56(b *testing.B) {
	g, err := nn.Build("resnet56", 3, 10, 1)
	if err != nil {
		b.Fatal(err)
	}
	nn.RandomizeBN(g, rand.New(rand.NewPCG(1, 2)))
	res, err := rm.Convert(g, rm.Options{})
	if err != nil {
		b.Fatal(err)
	}
	shape := nn.Shape{C: 3, H: 32, W: 32}
	for _, m := range []struct {
		name string
		g    *nn.Graph
	}{{"resnet56", g}, {"rmnet56", res.Graph}} {
		for _, threads := range []int{1, 2} {
			for _, batch := range []int{1, 32} {
				b.Run(fmt.Sprintf("%s/t%d/b%d", m.name, threads, batch), func(b *testing.B) {
					e, err := engine.Compile(m.g, engine.Options{Threads: threads, MaxBatch: batch, Shape: shape})
					if err != nil {
						b.Fatal(err)
					}
					defer e.Close()
					timeRuns(b, e, rm.RandomInput(batch, shape, 1).D, batch)
				})
			}
		}
	}
}

// demoCases runs fn as a sub-benchmark NAME/FORM/tT/bB for each demo model
// (ResNet and its RMNet) at 1 thread batch 1, 2 threads batch 1 and 2
// threads batch 32, with the engine compiled for it. It skips when the
// demo models are missing (a trimmed checkout).
func demoCases(b *testing.B, names []string, fn func(b *testing.B, e *engine.Engine, x []float32, batch int)) {
	for _, name := range names {
		g, err := modelio.Load(filepath.Join("..", "demo", name+".safetensors"), modelio.Options{})
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
				b.Run(fmt.Sprintf("%s/%s/t%d/b%d", name, m.form, threads, batch), func(b *testing.B) {
					e, err := engine.Compile(m.g, engine.Options{Threads: threads, MaxBatch: batch, Shape: shape})
					if err != nil {
						b.Fatal(err)
					}
					defer e.Close()
					fn(b, e, rm.RandomInput(batch, shape, 1).D, batch)
				})
			}
		}
	}
}

// BenchmarkDemo times the trained demo models (ResNet-20 on 1×28×28) as
// ResNet and as RMNet, per batch, for profiling the engine on them:
//
//	go test -run XXX -bench Demo -cpuprofile cpu.out ./engine
func BenchmarkDemo(b *testing.B) {
	demoCases(b, []string{"resnet20-mnist", "resnet20-fashion-mnist"}, timeRuns)
}

// timeRuns runs e on x (batch images) for the benchmark's loop and reports
// images/s, and those of the fastest run (the machine is shared: the best
// run shows the code's speed).
func timeRuns(b *testing.B, e *engine.Engine, x []float32, batch int) {
	best := time.Duration(1 << 62)
	for b.Loop() {
		t0 := time.Now()
		e.Run(x, batch)
		best = min(best, time.Since(t0))
	}
	b.ReportMetric(float64(batch*b.N)/b.Elapsed().Seconds(), "img/s")
	b.ReportMetric(float64(batch)/best.Seconds(), "best-img/s")
}
