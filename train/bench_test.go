package train

import (
	"math/rand/v2"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rmprune/rmprune/nn"
	"github.com/rmprune/rmprune/rm"
)

// BenchmarkTrainStep times one training step (forward, backward, SGD update)
// of ResNet-20 on 1×28×28 images and ResNet-56 on 3×32×32 images (CIFAR),
// batch 128, 2 threads (ResNet-20 also 1 thread), with the batch
// prepared ahead, and reports images/s = batch / median step time (the
// DESIGN's images_per_s; scripts/bench_train.sh compares it with PyTorch).
// resnet20-direct runs every conv directly (NetOptions.Direct), no Winograd;
// rmnet20 is ResNet-20 after RM with BatchNorms kept (the form pruning
// fine-tunes), -keepcopies with Net.KeepCopies (the copy structure run as
// copies), -keepcopies-dense with it frozen but computed densely.
func BenchmarkTrainStep(b *testing.B) {
	for _, bc := range []struct {
		arch            string
		c, h, batch, th int
	}{
		{"resnet20", 1, 28, 128, 2},
		{"resnet20-1thread", 1, 28, 128, 1},
		{"resnet56", 3, 32, 128, 2},
		{"resnet56-1thread", 3, 32, 128, 1},
		{"resnet20-direct", 1, 28, 128, 2},
		{"rmnet20", 1, 28, 128, 2},
		{"rmnet20-keepcopies", 1, 28, 128, 2},
		{"rmnet20-keepcopies-dense", 1, 28, 128, 2},
		{"resnet20-1thread-direct", 1, 28, 128, 1},
	} {
		b.Run(bc.arch, func(b *testing.B) {
			arch, _, _ := strings.Cut(bc.arch, "-")
			g, err := nn.Build(strings.Replace(arch, "rmnet", "resnet", 1), bc.c, 10, 1)
			if err != nil {
				b.Fatal(err)
			}
			if strings.HasPrefix(arch, "rmnet") {
				// The BN-kept RMNet pruning slims and fine-tunes.
				r, err := rm.Convert(g, rm.Options{KeepBN: true})
				if err != nil {
					b.Fatal(err)
				}
				g = r.Graph
			}
			in := nn.Shape{C: bc.c, H: bc.h, W: bc.h}
			net, err := NewNet(g, in, NetOptions{MaxBatch: bc.batch, Threads: bc.th, Direct: strings.HasSuffix(bc.arch, "direct")})
			if err != nil {
				b.Fatal(err)
			}
			defer net.Close()
			if strings.HasSuffix(bc.arch, "-keepcopies") {
				net.KeepCopies()
			}
			if strings.HasSuffix(bc.arch, "-keepcopies-dense") {
				net.keepCopies(false)
			}
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
			cpu0 := cpuTime()
			for b.Loop() {
				t0 := time.Now()
				step()
				times = append(times, time.Since(t0))
			}
			cpu := cpuTime() - cpu0
			slices.Sort(times)
			b.ReportMetric(float64(bc.batch)/times[len(times)/2].Seconds(), "images/s")
			// CPU time per step (the process's user+system time; a waiting
			// worker spins for a while, so with 2 threads it includes some
			// spinning): on a shared machine it moves less than wall time.
			b.ReportMetric(cpu.Seconds()*1e3/float64(len(times)), "cpu-ms/step")
		})
	}
}

// opKind names the category a layer's time is reported under by
// BenchmarkTrainOps.
func opKind(l *layer) string {
	n := l.node
	switch n.Op {
	case nn.OpConv:
		if n.G() != 1 {
			return "conv-grouped"
		}
		if n.Kernel == 1 {
			return "conv1x1"
		}
		if n.Stride == 1 {
			return "conv3x3-s1"
		}
		return "conv3x3-s2"
	case nn.OpBatchNorm:
		if l.relu != nil {
			return "bn+relu"
		}
		return "bn"
	case nn.OpAdd:
		if l.relu != nil {
			return "add+relu"
		}
		return "add"
	}
	return "other"
}

// BenchmarkTrainOps reports the per-op wall time of a training step (ms per
// step, forward and backward separately, summed over the layers of each
// kind) for the README's breakdown: ResNet-20 1×28×28 and ResNet-56
// 3×32×32, batch 128, 2 threads. The timers add a clock read per layer; the
// totals match BenchmarkTrainStep's within noise.
func BenchmarkTrainOps(b *testing.B) {
	for _, bc := range []struct {
		arch  string
		c, h  int
		batch int
	}{
		{"resnet20", 1, 28, 128},
		{"resnet56", 3, 32, 128},
	} {
		b.Run(bc.arch, func(b *testing.B) {
			g, err := nn.Build(bc.arch, bc.c, 10, 1)
			if err != nil {
				b.Fatal(err)
			}
			in := nn.Shape{C: bc.c, H: bc.h, W: bc.h}
			net, err := NewNet(g, in, NetOptions{MaxBatch: bc.batch, Threads: 2})
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
			var lossT, sgdT time.Duration
			step := func() {
				net.Forward(x, bc.batch, true)
				t0 := time.Now()
				net.Loss(labels)
				lossT += time.Since(t0)
				net.Backward()
				t0 = time.Now()
				sgd.Step(net.Params(), 0.01)
				sgdT += time.Since(t0)
			}
			for range 3 {
				step()
			}
			net.timing = &opTimes{fwd: make([]time.Duration, len(net.layers)), bwd: make([]time.Duration, len(net.layers))}
			lossT, sgdT = 0, 0
			steps := 0
			for b.Loop() {
				step()
				steps++
			}
			per := map[string]time.Duration{}
			for i, l := range net.layers {
				k := opKind(l)
				per[k+"-fwd"] += net.timing.fwd[i]
				per[k+"-bwd"] += net.timing.bwd[i]
			}
			per["loss"], per["sgd"] = lossT, sgdT
			for k, d := range per {
				if d > 0 {
					b.ReportMetric(d.Seconds()*1e3/float64(steps), k+"-ms")
				}
			}
		})
	}
}

// cpuTime returns the process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
