package train

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rmprune/rmprune/nn"
)

// BenchmarkTrainStep times one training step (forward, backward, SGD update)
// of ResNet-20 on 1×28×28 images, batch 128, 2 threads, with the batch
// prepared ahead, and reports images/s = batch / median step time (the
// DESIGN's images_per_s; scripts/bench_train.sh compares it with PyTorch).
func BenchmarkTrainStep(b *testing.B) {
	for _, bc := range []struct {
		arch            string
		c, h, batch, th int
	}{
		{"resnet20", 1, 28, 128, 2},
		{"resnet20-1thread", 1, 28, 128, 1},
	} {
		b.Run(bc.arch, func(b *testing.B) {
			g, err := nn.Build(strings.TrimSuffix(bc.arch, "-1thread"), bc.c, 10, 1)
			if err != nil {
				b.Fatal(err)
			}
			in := nn.Shape{C: bc.c, H: bc.h, W: bc.h}
			net, err := NewNet(g, in, NetOptions{MaxBatch: bc.batch, Threads: bc.th})
			if err != nil {
				b.Fatal(err)
			}
			defer net.Close()
			rng := rand.New(rand.NewPCG(1, 2))
			x := make([]float32, bc.batch*in.Numel())
			for i := range x {
				x[i] = float32(rng.NormFloat64())
			}
			labels := make([]int, bc.batch)
			for i := range labels {
				labels[i] = rng.IntN(10)
			}
			sgd := SGD{Momentum: 0.9, WeightDecay: 5e-4}
			step := func() {
				net.Forward(x, bc.batch, true)
				net.Loss(labels)
				net.Backward()
				sgd.Step(net.Params(), 0.01)
			}
			for range 3 {
				step()
			}
			var times []time.Duration
			for b.Loop() {
				t0 := time.Now()
				step()
				times = append(times, time.Since(t0))
			}
			slices.Sort(times)
			b.ReportMetric(float64(bc.batch)/times[len(times)/2].Seconds(), "images/s")
		})
	}
}
