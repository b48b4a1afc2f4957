package engine_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/rmprune/rmprune/engine"
	"github.com/rmprune/rmprune/nn"
	"github.com/rmprune/rmprune/pruning"
	"github.com/rmprune/rmprune/rm"
)

// BenchmarkDemoLayers profiles the MNIST demo ResNet-20 and its RMNet per
// step (mean and fastest run, which on a shared machine shows the code's
// speed) and logs the table:
//
//	go test -run XXX -bench DemoLayers -v ./engine
//
// (sub-benchmarks resnet20-mnist/FORM/tT/bB, as BenchmarkDemo's).
func BenchmarkDemoLayers(b *testing.B) {
	demoCases(b, []string{"resnet20-mnist", "resnet20-fashion-mnist"}, profileRuns)
}

// profileRuns runs e on x (batch images) for the benchmark's loop after a
// warm-up, with per-step profiling, and logs the per-step table.
func profileRuns(b *testing.B, e *engine.Engine, x []float32, batch int) {
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
}

// BenchmarkPrunedLayers profiles CIFAR ResNet-56 (random BN statistics) as
// RMNet pruned by L1 50% uniform without fine-tuning (benchort's pruned row)
// per step, at 2 threads batch 1 and 32:
//
//	go test -run XXX -bench PrunedLayers -v ./engine
func BenchmarkPrunedLayers(b *testing.B) {
	g, err := nn.Build("resnet56", 3, 10, 1)
	if err != nil {
		b.Fatal(err)
	}
	shape := nn.Shape{C: 3, H: 32, W: 32}
	g.Input = [3]int{3, 32, 32}
	nn.RandomizeBN(g, rand.New(rand.NewPCG(1, 2)))
	ratio := 0.5
	p, err := pruning.Prune(g, pruning.Options{Method: pruning.L1, Scope: "uniform", Ratio: &ratio, Form: "rmnet", Shape: shape})
	if err != nil {
		b.Fatal(err)
	}
	for _, batch := range []int{1, 32} {
		b.Run(fmt.Sprintf("rmnet56-l1-50/t2/b%d", batch), func(b *testing.B) {
			e, err := engine.Compile(p.Graph, engine.Options{Threads: 2, MaxBatch: batch, Shape: shape})
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			profileRuns(b, e, rm.RandomInput(batch, shape, 1).D, batch)
		})
	}
}
