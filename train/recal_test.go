package train

import (
	"context"
	"math"
	"path/filepath"
	"testing"

	"github.com/rmprune/rmprune/dataset"
	"github.com/rmprune/rmprune/nn"
)

// After RecalibrateBN the first BatchNorm's running statistics are the
// averages of its input's batch statistics over the first images of the
// training split (in order, no augmentation), computed here with the
// reference forward of the final weights.
func TestRecalibrateBN(t *testing.T) {
	data := openMNIST(t)
	g := tinyResNet(t, 3)
	opt := DefaultOptions()
	opt.Epochs, opt.Batch, opt.LR, opt.Seed, opt.Threads = 1, 32, 0.05, 1, 2
	opt.Limit, opt.EvalLimit, opt.Out = 256, 64, filepath.Join(t.TempDir(), "m.safetensors")
	opt.RecalibrateBN = 100 // 4 batches of 32
	if _, err := Run(context.Background(), g, data, opt); err != nil {
		t.Fatal(err)
	}
	bn := g.Node("bn1")
	if bn == nil || bn.Inputs[0] != "conv1" {
		t.Fatal("tiny ResNet: no bn1 after conv1")
	}
	loader, err := dataset.NewLoader(data.Train.Head(opt.Limit), dataset.LoaderOptions{Batch: 32, Shape: data.Shape, Mean: g.Mean, Std: g.Std, DropLast: true})
	if err != nil {
		t.Fatal(err)
	}
	c := g.Node("conv1").Out
	mean, vr := make([]float64, c), make([]float64, c)
	const batches = 4
	for i := range batches {
		b := loader.NewBatch()
		loader.Fill(b, 0, i)
		x := nn.NewAct(b.N(), b.Shape[0], b.Shape[1], b.Shape[2])
		copy(x.D, b.X)
		if _, err := g.Forward(x, func(n *nn.Node, out *nn.Act) {
			if n.Name != "conv1" {
				return
			}
			for ch := range c {
				var s, ss float64
				cnt := 0
				for im := range out.N {
					for _, v := range out.Plane(im, ch) {
						s += float64(v)
						ss += float64(v) * float64(v)
						cnt++
					}
				}
				m := s / float64(cnt)
				mean[ch] += m / batches
				vr[ch] += (ss/float64(cnt) - m*m) * float64(cnt) / float64(cnt-1) / batches
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	rm, rv := bn.P("running_mean"), bn.P("running_var")
	for ch := range c {
		if d := math.Abs(float64(rm[ch]) - mean[ch]); d > 1e-4*max(1, math.Abs(mean[ch])) {
			t.Errorf("channel %d: running mean %g; want the batch average %g", ch, rm[ch], mean[ch])
		}
		if d := math.Abs(float64(rv[ch]) - vr[ch]); d > 1e-3*max(1, vr[ch]) {
			t.Errorf("channel %d: running var %g; want the batch average %g", ch, rv[ch], vr[ch])
		}
	}
}
