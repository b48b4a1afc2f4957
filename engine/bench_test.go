package engine_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/rmprune/rmprune/engine"
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
					x := rm.RandomInput(batch, shape, 1).D
					for b.Loop() {
						e.Run(x, batch)
					}
					b.ReportMetric(float64(batch*b.N)/b.Elapsed().Seconds(), "img/s")
				})
			}
		}
	}
}
